// Shape legend: D hidden_size, H num_attention_heads, Hkv num_key_value_heads, Dh head_dim,
// V vocab_size, F intermediate_size.
#include "lm/model_config.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "lm/trainer_error.h"

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
    {"mistral", "MistralForCausalLM"},
};

constexpr std::pair<RopeScaling::Type, const char*> kRopeTypes[] = {
    {RopeScaling::Type::kDefault, "default"}, {RopeScaling::Type::kLinear, "linear"},
    {RopeScaling::Type::kDynamic, "dynamic"}, {RopeScaling::Type::kLlama3, "llama3"},
    {RopeScaling::Type::kYarn, "yarn"},
};

// The scaling of rope_scaling (transformers 4: {"type" or "rope_type", "factor", ...}) or of
// rope_parameters (transformers 5: the same keys plus rope_theta). `field` names the object in
// errors. Unknown keys are refused: a key we ignore could change the model.
RopeScaling ParseRopeScaling(const json& object, const std::string& field) {
  if (!object.is_object()) FieldError(field, "must be an object, got " + object.dump());
  RopeScaling scaling;
  const json* type = Find(object, "rope_type");
  if (type == nullptr) type = Find(object, "type");
  if (type != nullptr) {
    bool known = false;
    for (const auto& [value, name] : kRopeTypes) {
      if (type->is_string() && type->get<std::string>() == name) {
        scaling.type = value;
        known = true;
      }
    }
    if (!known) {
      FieldError(field + ".rope_type", "unsupported " + type->dump() +
                                           " (supported: default, linear, dynamic, llama3, yarn)");
    }
  }
  auto number = [&](const char* key, double fallback) {
    const json* value = Find(object, key);
    if (value == nullptr) return fallback;
    if (!value->is_number() || !(value->get<double>() > 0)) {
      FieldError(field + "." + key, "must be a positive number, got " + value->dump());
    }
    return value->get<double>();
  };
  auto optional_number = [&](const char* key) -> std::optional<double> {
    if (Find(object, key) == nullptr) return std::nullopt;
    return number(key, 0);
  };
  const bool needs_factor = scaling.type != RopeScaling::Type::kDefault;
  if (needs_factor && Find(object, "factor") == nullptr) {
    FieldError(field + ".factor",
               "missing (rope type " + std::string(RopeScaling::TypeName(scaling.type)) + ")");
  }
  scaling.factor = number("factor", 1.0);
  scaling.low_freq_factor = number("low_freq_factor", 1.0);
  scaling.high_freq_factor = number("high_freq_factor", 4.0);
  if (scaling.type == RopeScaling::Type::kLlama3 &&
      !(scaling.high_freq_factor > scaling.low_freq_factor)) {
    FieldError(field + ".high_freq_factor", "must be greater than low_freq_factor");
  }
  scaling.original_max_position_embeddings =
      OptionalPositiveInt(object, "original_max_position_embeddings", 0);
  if (scaling.type == RopeScaling::Type::kLlama3 && scaling.original_max_position_embeddings == 0) {
    FieldError(field + ".original_max_position_embeddings", "missing (rope type llama3)");
  }
  scaling.beta_fast = number("beta_fast", 32.0);
  scaling.beta_slow = number("beta_slow", 1.0);
  scaling.attention_factor = optional_number("attention_factor");
  scaling.mscale = optional_number("mscale");
  scaling.mscale_all_dim = optional_number("mscale_all_dim");
  scaling.truncate = OptionalBool(object, "truncate", true);
  static const char* kKnownKeys[] = {"rope_type",
                                     "type",
                                     "rope_theta",
                                     "factor",
                                     "low_freq_factor",
                                     "high_freq_factor",
                                     "original_max_position_embeddings",
                                     "beta_fast",
                                     "beta_slow",
                                     "attention_factor",
                                     "mscale",
                                     "mscale_all_dim",
                                     "truncate"};
  for (const auto& item : object.items()) {
    bool known = false;
    for (const char* key : kKnownKeys) known = known || item.key() == key;
    if (!known && !item.value().is_null()) {
      FieldError(field + "." + item.key(), "unsupported RoPE parameter");
    }
  }
  return scaling;
}

}  // namespace

const char* RopeScaling::TypeName(Type type) {
  for (const auto& [value, name] : kRopeTypes) {
    if (value == type) return name;
  }
  return "default";
}

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
    FieldError("model_type",
               "unsupported '" + config.model_type + "' (supported: llama, qwen2, mistral)");
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
  // transformers 5 writes rope_parameters {"rope_theta", "rope_type", scaling keys} instead of
  // rope_theta and rope_scaling; a file may hold either spelling (not both with scaling).
  const json* rope_parameters = Find(object, "rope_parameters");
  if (rope_parameters != nullptr) {
    config.rope_scaling = ParseRopeScaling(*rope_parameters, "rope_parameters");
    if (Find(object, "rope_scaling") != nullptr) {
      FieldError("rope_scaling", "given together with rope_parameters: keep one of them");
    }
  } else if (const json* scaling = Find(object, "rope_scaling")) {
    config.rope_scaling = ParseRopeScaling(*scaling, "rope_scaling");
  }
  if (const json* layer_types = Find(object, "layer_types")) {
    if (!layer_types->is_array()) FieldError("layer_types", "must be a list");
    for (const json& type : *layer_types) {
      if (type != "full_attention") {
        FieldError("layer_types", "unsupported " + type.dump() + " (only \"full_attention\")");
      }
    }
  }
  if (config.model_type != "mistral" && OptionalBool(object, "use_sliding_window", false)) {
    FieldError("use_sliding_window", "sliding-window attention is not supported");
  }
  if (config.model_type == "mistral") {
    if (const json* window = Find(object, "sliding_window")) {
      if (!window->is_number_integer() || window->get<int64_t>() <= 0) {
        FieldError("sliding_window", "must be a positive integer or null, got " + window->dump());
      }
      config.sliding_window = window->get<int64_t>();
    }
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
  if (rope_parameters != nullptr && Find(*rope_parameters, "rope_theta") != nullptr) {
    try {
      config.rope_theta = OptionalPositiveNumber(*rope_parameters, "rope_theta", 10000.0);
    } catch (const TrainError&) {
      FieldError("rope_parameters.rope_theta",
                 "must be a positive number, got " + (*rope_parameters)["rope_theta"].dump());
    }
  }
  config.max_position_embeddings = OptionalPositiveInt(object, "max_position_embeddings", 2048);
  if (config.rope_scaling.original_max_position_embeddings == 0) {
    config.rope_scaling.original_max_position_embeddings = config.max_position_embeddings;
  }
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
  // transformers 5 writes "dtype"; older versions "torch_dtype".
  for (const char* field : {"torch_dtype", "dtype"}) {
    if (const json* dtype = Find(object, field)) {
      if (!dtype->is_string()) FieldError(field, "must be a string");
      config.torch_dtype = dtype->get<std::string>();
    }
  }
  config.initializer_range = OptionalPositiveNumber(object, "initializer_range", 0.02);
  return config;
}

void LlamaConfig::CheckSequenceLength(int64_t seq_len) const {
  if (sliding_window && seq_len > *sliding_window) {
    throw TrainError("spec.training.seq_len: " + std::to_string(seq_len) +
                     " is longer than the model's sliding_window (" +
                     std::to_string(*sliding_window) +
                     "); tuneledger attends over whole sequences, which matches " + model_type +
                     "'s sliding-window attention only within the window: use seq_len <= " +
                     std::to_string(*sliding_window));
  }
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
  const char* architecture = "LlamaForCausalLM";
  for (const SupportedArchitecture& supported : kSupported) {
    if (model_type == supported.model_type) architecture = supported.architecture;
  }
  json object = {
      {"architectures", {architecture}},
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
  if (rope_scaling.type != RopeScaling::Type::kDefault) {
    json scaling = {
        {"rope_type", RopeScaling::TypeName(rope_scaling.type)},
        {"factor", rope_scaling.factor},
        {"original_max_position_embeddings", rope_scaling.original_max_position_embeddings}};
    if (rope_scaling.type == RopeScaling::Type::kLlama3) {
      scaling["low_freq_factor"] = rope_scaling.low_freq_factor;
      scaling["high_freq_factor"] = rope_scaling.high_freq_factor;
    }
    if (rope_scaling.type == RopeScaling::Type::kYarn) {
      scaling["beta_fast"] = rope_scaling.beta_fast;
      scaling["beta_slow"] = rope_scaling.beta_slow;
      scaling["truncate"] = rope_scaling.truncate;
      if (rope_scaling.attention_factor)
        scaling["attention_factor"] = *rope_scaling.attention_factor;
      if (rope_scaling.mscale) scaling["mscale"] = *rope_scaling.mscale;
      if (rope_scaling.mscale_all_dim) scaling["mscale_all_dim"] = *rope_scaling.mscale_all_dim;
    }
    object["rope_scaling"] = scaling;
  }
  if (model_type == "mistral") {
    object["sliding_window"] = sliding_window ? json(*sliding_window) : json(nullptr);
  }
  object["bos_token_id"] = bos_token_id ? json(*bos_token_id) : json(nullptr);
  object["eos_token_id"] = eos_token_id ? json(*eos_token_id) : json(nullptr);
  object["pad_token_id"] = pad_token_id ? json(*pad_token_id) : json(nullptr);
  return object;
}

}  // namespace tuneledger::train
