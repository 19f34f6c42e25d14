// Shape legend: r LoRA rank; in / out a projection's features.
#include "worker/trainer/model/peft_adapter.h"

#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <string_view>

#include "lm/trainer_error.h"
#include "worker/trainer/model/safetensors_reader.h"
#include "worker/trainer/model/safetensors_writer.h"

namespace tuneledger::train {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kAdapterWeightsFile = "adapter_model.safetensors";
constexpr const char* kAdapterConfigFile = "adapter_config.json";

// The whole model-name <-> PEFT-key mapping. Model names are Hugging Face's already; PEFT
// wraps the model twice (PeftModelForCausalLM.base_model = LoraModel, LoraModel.model = the HF
// model), hence the prefix. Its saved files drop the adapter name ("default") that its
// in-memory state dict carries; we write the saved form and accept both on reading.
constexpr std::string_view kPeftPrefix = "base_model.model.";
struct PeftSuffixRule {
  std::string_view model_suffix;
  std::string_view peft_suffix;
  bool written;  // the form we write (PEFT's saved form)
};
constexpr PeftSuffixRule kPeftSuffixTable[] = {
    {".lora_A.weight", ".lora_A.weight", true},
    {".lora_B.weight", ".lora_B.weight", true},
    {".lora_A.weight", ".lora_A.default.weight", false},
    {".lora_B.weight", ".lora_B.default.weight", false},
};

bool EndsWith(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

std::string ShapeString(at::IntArrayRef shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? "," : "") + std::to_string(shape[i]);
  return text + "]";
}

json ReadJsonFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw TrainError(path + ": cannot open");
  std::stringstream text;
  text << in.rdbuf();
  json value = json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded() || !value.is_object()) throw TrainError(path + ": not a JSON object");
  return value;
}

// PEFT writes lora_alpha as an int when it is one.
json AlphaJson(double alpha) {
  if (alpha == static_cast<double>(static_cast<int64_t>(alpha))) {
    return static_cast<int64_t>(alpha);
  }
  return alpha;
}

LoraOptions ParseAdapterConfig(const json& config, const std::string& path,
                               std::string* base_model_name_or_path) {
  auto field = [&](const char* name) -> const json& {
    auto it = config.find(name);
    if (it == config.end()) throw TrainError(path + ": " + name + ": missing");
    return *it;
  };
  auto fail = [&](const char* name, const std::string& problem) {
    return TrainError(path + ": " + name + ": " + problem);
  };
  const json& peft_type = field("peft_type");
  if (!peft_type.is_string() || peft_type.get<std::string>() != "LORA") {
    throw fail("peft_type", "must be \"LORA\"");
  }
  LoraOptions lora;
  const json& r = field("r");
  if (!r.is_number_integer()) throw fail("r", "must be an integer");
  lora.r = r.get<int>();
  const json& alpha = field("lora_alpha");
  if (!alpha.is_number()) throw fail("lora_alpha", "must be a number");
  lora.alpha = alpha.get<double>();
  auto dropout = config.find("lora_dropout");
  if (dropout != config.end() && !dropout->is_null()) {
    if (!dropout->is_number()) throw fail("lora_dropout", "must be a number");
    lora.dropout = dropout->get<double>();
  } else {
    lora.dropout = 0.0;
  }
  const json& targets = field("target_modules");
  if (!targets.is_array()) throw fail("target_modules", "must be a list of module names");
  lora.target_modules.clear();
  for (const json& name : targets) {
    if (!name.is_string()) throw fail("target_modules", "must be a list of module names");
    lora.target_modules.push_back(name.get<std::string>());
  }
  auto bias = config.find("bias");
  if (bias != config.end() && !(bias->is_string() && bias->get<std::string>() == "none")) {
    throw fail("bias", "only \"none\" is supported");
  }
  for (const char* flag : {"fan_in_fan_out", "use_rslora", "use_dora", "lora_bias", "use_qalora"}) {
    auto it = config.find(flag);
    if (it != config.end() && !it->is_null() && !(it->is_boolean() && !it->get<bool>())) {
      throw fail(flag, "only false is supported");
    }
  }
  // PEFT options that would make the adapter differ from one rank and one scale on every target
  // of every layer: each must be absent, null or empty.
  for (const char* option :
       {"rank_pattern", "alpha_pattern", "layers_to_transform", "modules_to_save",
        "layer_replication", "target_parameters", "trainable_token_indices"}) {
    auto it = config.find(option);
    if (it != config.end() && !it->is_null() &&
        !((it->is_object() || it->is_array()) && it->empty())) {
      throw fail(option, "is not supported, got " + it->dump());
    }
  }
  try {
    ValidateLoraOptions(lora);
  } catch (const TrainError& error) {
    throw TrainError(path + ": " + error.what());
  }
  auto base = config.find("base_model_name_or_path");
  *base_model_name_or_path =
      (base != config.end() && base->is_string()) ? base->get<std::string>() : std::string();
  return lora;
}

}  // namespace

std::string PeftKeyFromModelName(const std::string& model_name) {
  for (const PeftSuffixRule& rule : kPeftSuffixTable) {
    if (rule.written && EndsWith(model_name, rule.model_suffix)) {
      return std::string(kPeftPrefix) +
             model_name.substr(0, model_name.size() - rule.model_suffix.size()) +
             std::string(rule.peft_suffix);
    }
  }
  throw TrainError("'" + model_name + "' is not a LoRA parameter name");
}

std::string ModelNameFromPeftKey(const std::string& peft_key) {
  if (peft_key.compare(0, kPeftPrefix.size(), kPeftPrefix) == 0) {
    const std::string rest = peft_key.substr(kPeftPrefix.size());
    for (const PeftSuffixRule& rule : kPeftSuffixTable) {
      if (EndsWith(rest, rule.peft_suffix)) {
        return rest.substr(0, rest.size() - rule.peft_suffix.size()) +
               std::string(rule.model_suffix);
      }
    }
  }
  throw TrainError("'" + peft_key + "' is not a PEFT LoRA key (base_model.model.<module>" +
                   ".lora_A.weight or .lora_B.weight)");
}

void WritePeftAdapter(LlamaForCausalLM& model, const LoraOptions& lora,
                      const std::string& base_model_name_or_path, const std::string& out_dir) {
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& [name, param] : model->NamedLoraParameters()) {
    tensors.emplace_back(PeftKeyFromModelName(name),
                         param.detach().to(torch::kCPU, torch::kFloat32));  // [r,in] / [out,r]
  }
  if (tensors.empty()) throw TrainError("WritePeftAdapter: the model has no LoRA parameters");
  std::error_code error;
  fs::create_directories(out_dir, error);
  if (error) throw TrainError(out_dir + ": cannot create: " + error.message());
  const json config = {
      {"peft_type", "LORA"},
      {"task_type", "CAUSAL_LM"},
      {"base_model_name_or_path", base_model_name_or_path},
      {"revision", nullptr},
      {"inference_mode", true},
      {"r", lora.r},
      {"lora_alpha", AlphaJson(lora.alpha)},
      {"lora_dropout", lora.dropout},
      {"target_modules", lora.target_modules},
      {"bias", "none"},
      {"fan_in_fan_out", false},
      {"modules_to_save", nullptr},
      {"init_lora_weights", true},
      {"layers_to_transform", nullptr},
      {"layers_pattern", nullptr},
  };
  WriteSafetensors((fs::path(out_dir) / kAdapterWeightsFile).string(), tensors, {{"format", "pt"}});
  WriteFileAtomically((fs::path(out_dir) / kAdapterConfigFile).string(), config.dump(2) + "\n");
}

PeftAdapter ReadPeftAdapter(const std::string& dir) {
  PeftAdapter adapter;
  const std::string config_path = (fs::path(dir) / kAdapterConfigFile).string();
  adapter.lora =
      ParseAdapterConfig(ReadJsonFile(config_path), config_path, &adapter.base_model_name_or_path);
  const std::string weights_path = (fs::path(dir) / kAdapterWeightsFile).string();
  SafetensorsFile file = SafetensorsFile::Open(weights_path);
  std::map<std::string, torch::Tensor> weights;
  for (const std::string& key : file.names()) {
    std::string name;
    try {
      name = ModelNameFromPeftKey(key);
    } catch (const TrainError& error) {
      throw TrainError(weights_path + ": " + error.what());
    }
    torch::Tensor tensor = file.Tensor(key);  // [r,in] or [out,r], stored dtype
    if (!tensor.is_floating_point()) {
      throw TrainError(weights_path + ": tensor '" + key + "' is not floating point");
    }
    if (!weights.emplace(name, tensor.to(torch::kFloat32)).second) {
      throw TrainError(weights_path + ": tensor '" + key + "' appears twice");
    }
  }
  adapter.weights.assign(weights.begin(), weights.end());
  return adapter;
}

void LoadLoraWeights(LlamaForCausalLM& model,
                     const std::vector<std::pair<std::string, torch::Tensor>>& weights) {
  std::map<std::string, torch::Tensor> params;
  for (const auto& [name, param] : model->NamedLoraParameters()) params[name] = param;
  std::set<std::string> loaded;
  torch::NoGradGuard no_grad;
  for (const auto& [name, value] : weights) {
    auto it = params.find(name);
    if (it == params.end()) {
      throw TrainError("LoRA weights: unexpected tensor '" + name +
                       "' (not a LoRA parameter of this model and target_modules)");
    }
    if (!loaded.insert(name).second) {
      throw TrainError("LoRA weights: tensor '" + name + "' given twice");
    }
    if (value.sizes() != it->second.sizes()) {
      throw TrainError("LoRA weights: tensor '" + name + "' has shape " +
                       ShapeString(value.sizes()) + ", the model expects " +
                       ShapeString(it->second.sizes()));
    }
    it->second.copy_(value);
  }
  for (const auto& [name, param] : params) {
    if (loaded.count(name) == 0) throw TrainError("LoRA weights: missing tensor '" + name + "'");
  }
}

void InitLoraFromAdapter(LlamaForCausalLM& model, const LoraOptions& lora, const std::string& dir) {
  const PeftAdapter adapter = ReadPeftAdapter(dir);
  const std::string config_path = (fs::path(dir) / kAdapterConfigFile).string();
  auto differs = [&](const char* field, const std::string& adapter_value,
                     const std::string& job_value) {
    return TrainError(config_path + ": " + field + " is " + adapter_value + ", the job's lora." +
                      field + " is " + job_value);
  };
  if (adapter.lora.r != lora.r) {
    throw differs("r", std::to_string(adapter.lora.r), std::to_string(lora.r));
  }
  if (adapter.lora.alpha != lora.alpha) {
    throw differs("lora_alpha", json(adapter.lora.alpha).dump(), json(lora.alpha).dump());
  }
  const std::set<std::string> adapter_targets(adapter.lora.target_modules.begin(),
                                              adapter.lora.target_modules.end());
  const std::set<std::string> job_targets(lora.target_modules.begin(), lora.target_modules.end());
  if (adapter_targets != job_targets) {
    throw differs("target_modules", json(adapter_targets).dump(), json(job_targets).dump());
  }
  try {
    LoadLoraWeights(model, adapter.weights);
  } catch (const TrainError& error) {
    throw TrainError(dir + ": " + error.what());
  }
}

}  // namespace tuneledger::train
