// Shape legend: D hidden_size, H num_attention_heads, Hkv num_key_value_heads, Dh head_dim,
// V vocab_size, F intermediate_size.
#include "worker/trainer/model_config.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "worker/trainer/trainer_error.h"

namespace tuneledger::train {
namespace {

using nlohmann::json;

[[noreturn]] void FieldError(const std::string& field, const std::string& problem) {
  throw TrainError("config.json: " + field + ": " + problem);
}

// A present, non-null field, or nullptr.
const json* Find(const json& object, const std::string& field) {
  auto it = object.find(field);
  if (it == object.end() || it->is_null()) return nullptr;
  return &*it;
}

int64_t RequiredPositiveInt(const json& object, const std::string& field) {
  const json* value = Find(object, field);
  if (value == nullptr) FieldError(field, "missing");
  if (!value->is_number_integer() || value->get<int64_t>() <= 0) {
    FieldError(field, "must be a positive integer, got " + value->dump());
  }
  return value->get<int64_t>();
}

int64_t OptionalPositiveInt(const json& object, const std::string& field, int64_t fallback) {
  if (Find(object, field) == nullptr) return fallback;
  return RequiredPositiveInt(object, field);
}

double OptionalPositiveNumber(const json& object, const std::string& field, double fallback) {
  const json* value = Find(object, field);
  if (value == nullptr) return fallback;
  if (!value->is_number() || value->get<double>() <= 0) {
    FieldError(field, "must be a positive number, got " + value->dump());
  }
  return value->get<double>();
}

bool OptionalBool(const json& object, const std::string& field, bool fallback) {
  const json* value = Find(object, field);
  if (value == nullptr) return fallback;
  if (!value->is_boolean()) FieldError(field, "must be true or false, got " + value->dump());
  return value->get<bool>();
}

// A token id, or the first of a list of them (eos_token_id may be a list).
std::optional<int64_t> OptionalTokenId(const json& object, const std::string& field) {
  const json* value = Find(object, field);
  if (value == nullptr) return std::nullopt;
  const json* id = value;
  if (value->is_array()) {
    if (value->empty()) return std::nullopt;
    id = &(*value)[0];
  }
  if (!id->is_number_integer() || id->get<int64_t>() < 0) {
    FieldError(field, "must be a non-negative integer (or a list of them), got " + value->dump());
  }
  return id->get<int64_t>();
}

struct SupportedArchitecture {
  const char* model_type;
  const char* architecture;
};
constexpr SupportedArchitecture kSupported[] = {
    {"llama", "LlamaForCausalLM"},
    {"qwen2", "Qwen2ForCausalLM"},
};

}  // namespace

LlamaConfig LlamaConfig::FromJson(const json& object) {
  if (!object.is_object()) throw TrainError("config.json: not a JSON object");
  LlamaConfig config;

  const json* model_type = Find(object, "model_type");
  if (model_type == nullptr) FieldError("model_type", "missing");
  if (!model_type->is_string()) FieldError("model_type", "must be a string");
  config.model_type = model_type->get<std::string>();
  const SupportedArchitecture* architecture = nullptr;
  for (const SupportedArchitecture& supported : kSupported) {
    if (config.model_type == supported.model_type) architecture = &supported;
  }
  if (architecture == nullptr) {
    FieldError("model_type", "unsupported '" + config.model_type + "' (supported: llama, qwen2)");
  }
  if (const json* architectures = Find(object, "architectures")) {
    if (!architectures->is_array()) FieldError("architectures", "must be a list of strings");
    for (const json& name : *architectures) {
      if (!name.is_string() || name.get<std::string>() != architecture->architecture) {
        FieldError("architectures", "unsupported " + name.dump() +
                                        " (supported: " + architecture->architecture +
                                        " for model_type " + config.model_type + ")");
      }
    }
  }
  if (const json* act = Find(object, "hidden_act")) {
    if (!act->is_string() || act->get<std::string>() != "silu") {
      FieldError("hidden_act", "unsupported " + act->dump() + " (supported: \"silu\")");
    }
  }
  if (const json* scaling = Find(object, "rope_scaling")) {
    FieldError("rope_scaling", "unsupported " + scaling->dump() + " (only null)");
  }
  if (OptionalBool(object, "use_sliding_window", false)) {
    FieldError("use_sliding_window", "sliding-window attention is not supported");
  }
  if (OptionalPositiveNumber(object, "pretraining_tp", 1) != 1) {
    FieldError("pretraining_tp", "only 1 is supported");
  }

  config.vocab_size = RequiredPositiveInt(object, "vocab_size");
  config.hidden_size = RequiredPositiveInt(object, "hidden_size");
  config.intermediate_size = RequiredPositiveInt(object, "intermediate_size");
  config.num_hidden_layers = RequiredPositiveInt(object, "num_hidden_layers");
  config.num_attention_heads = RequiredPositiveInt(object, "num_attention_heads");
  config.num_key_value_heads =
      OptionalPositiveInt(object, "num_key_value_heads", config.num_attention_heads);
  if (config.num_attention_heads % config.num_key_value_heads != 0) {
    FieldError("num_key_value_heads", "must divide num_attention_heads (" +
                                          std::to_string(config.num_attention_heads) + "), got " +
                                          std::to_string(config.num_key_value_heads));
  }
  if (Find(object, "head_dim") == nullptr && config.hidden_size % config.num_attention_heads != 0) {
    FieldError("hidden_size", "must be a multiple of num_attention_heads when head_dim is absent");
  }
  config.head_dim =
      OptionalPositiveInt(object, "head_dim", config.hidden_size / config.num_attention_heads);
  if (config.head_dim % 2 != 0) {
    FieldError("head_dim", "must be even for RoPE, got " + std::to_string(config.head_dim));
  }
  config.rms_norm_eps = OptionalPositiveNumber(object, "rms_norm_eps", 1e-6);
  config.rope_theta = OptionalPositiveNumber(object, "rope_theta", 10000.0);
  config.max_position_embeddings = OptionalPositiveInt(object, "max_position_embeddings", 2048);
  config.tie_word_embeddings = OptionalBool(object, "tie_word_embeddings", false);
  if (config.model_type == "qwen2") {
    // Qwen2 always has q/k/v bias and never an o_proj bias.
    config.attention_bias = true;
    config.attention_output_bias = false;
  } else {
    config.attention_bias = OptionalBool(object, "attention_bias", false);
    config.attention_output_bias = config.attention_bias;
  }
  config.mlp_bias = OptionalBool(object, "mlp_bias", false);
  config.bos_token_id = OptionalTokenId(object, "bos_token_id");
  config.eos_token_id = OptionalTokenId(object, "eos_token_id");
  config.pad_token_id = OptionalTokenId(object, "pad_token_id");
  if (const json* dtype = Find(object, "torch_dtype")) {
    if (!dtype->is_string()) FieldError("torch_dtype", "must be a string");
    config.torch_dtype = dtype->get<std::string>();
  }
  config.initializer_range = OptionalPositiveNumber(object, "initializer_range", 0.02);
  return config;
}

LlamaConfig LlamaConfig::FromFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw TrainError(path + ": cannot open");
  std::stringstream text;
  text << in.rdbuf();
  json object = json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (object.is_discarded()) throw TrainError(path + ": not valid JSON");
  try {
    return FromJson(object);
  } catch (const TrainError& error) {
    throw TrainError(path + ": " + error.what());
  }
}

json LlamaConfig::ToJson() const {
  const bool qwen2 = model_type == "qwen2";
  json object = {
      {"architectures", {qwen2 ? "Qwen2ForCausalLM" : "LlamaForCausalLM"}},
      {"model_type", model_type},
      {"vocab_size", vocab_size},
      {"hidden_size", hidden_size},
      {"intermediate_size", intermediate_size},
      {"num_hidden_layers", num_hidden_layers},
      {"num_attention_heads", num_attention_heads},
      {"num_key_value_heads", num_key_value_heads},
      {"head_dim", head_dim},
      {"hidden_act", "silu"},
      {"rms_norm_eps", rms_norm_eps},
      {"rope_theta", rope_theta},
      {"rope_scaling", nullptr},
      {"max_position_embeddings", max_position_embeddings},
      {"tie_word_embeddings", tie_word_embeddings},
      {"mlp_bias", mlp_bias},
      {"torch_dtype", torch_dtype},
      {"initializer_range", initializer_range},
  };
  if (!qwen2) object["attention_bias"] = attention_bias;
  object["bos_token_id"] = bos_token_id ? json(*bos_token_id) : json(nullptr);
  object["eos_token_id"] = eos_token_id ? json(*eos_token_id) : json(nullptr);
  object["pad_token_id"] = pad_token_id ? json(*pad_token_id) : json(nullptr);
  return object;
}

}  // namespace tuneledger::train
