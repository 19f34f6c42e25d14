// Shape legend: D hidden, V vocab (other shapes come from the modules).
#include "worker/trainer/model/model_loader.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "lm/trainer_error.h"
#include "worker/trainer/model/safetensors_reader.h"
#include "worker/trainer/model/safetensors_writer.h"

namespace tuneledger::train {
namespace {

namespace fs = std::filesystem;

constexpr const char* kSingleFile = "model.safetensors";
constexpr const char* kIndexFile = "model.safetensors.index.json";
constexpr size_t kMaxListedProblems = 10;

std::string ShapeString(at::IntArrayRef shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? "," : "") + std::to_string(shape[i]);
  return text + "]";
}

// Every stored tensor of a model folder: one file or the shards of an index.
class WeightSource {
 public:
  explicit WeightSource(const std::string& model_dir) {
    const fs::path dir(model_dir);
    if (fs::exists(dir / kIndexFile)) {
      OpenIndex(dir, (dir / kIndexFile).string());
    } else if (fs::exists(dir / kSingleFile)) {
      AddFile((dir / kSingleFile).string());
    } else {
      throw TrainError(model_dir + ": no " + kSingleFile + " or " + kIndexFile);
    }
  }

  // name -> (file, entry), sorted by name.
  struct Location {
    const SafetensorsFile* file;
    const SafetensorsEntry* entry;
  };
  const std::map<std::string, Location>& tensors() const { return tensors_; }

 private:
  void OpenIndex(const fs::path& dir, const std::string& index_path) {
    std::ifstream in(index_path, std::ios::binary);
    if (!in) throw TrainError(index_path + ": cannot open");
    std::stringstream text;
    text << in.rdbuf();
    nlohmann::json index = nlohmann::json::parse(text.str(), nullptr, false);
    if (index.is_discarded() || !index.is_object()) {
      throw TrainError(index_path + ": not a JSON object");
    }
    auto map = index.find("weight_map");
    if (map == index.end() || !map->is_object()) {
      throw TrainError(index_path + ": weight_map: missing or not an object");
    }
    std::map<std::string, std::string> weight_map;
    for (const auto& item : map->items()) {
      if (!item.value().is_string()) {
        throw TrainError(index_path + ": weight_map: '" + item.key() + "' is not a file name");
      }
      const std::string shard = item.value().get<std::string>();
      // Shards live beside the index: a path elsewhere is refused.
      if (shard.empty() || shard.find('/') != std::string::npos || shard == "." || shard == "..") {
        throw TrainError(index_path + ": weight_map: '" + item.key() + "' names shard '" + shard +
                         "', not a file in the model folder");
      }
      weight_map[item.key()] = shard;
    }
    std::map<std::string, const SafetensorsFile*> shards;
    for (const auto& [name, shard] : weight_map) {
      if (shards.count(shard) == 0) shards[shard] = AddFile((dir / shard).string());
    }
    for (const auto& [name, shard] : weight_map) {
      auto it = tensors_.find(name);
      if (it == tensors_.end() || it->second.file != shards[shard]) {
        throw TrainError(index_path + ": weight_map: tensor '" + name + "' is not in shard " +
                         shard);
      }
    }
    for (const auto& [name, location] : tensors_) {
      if (weight_map.count(name) == 0) {
        throw TrainError(location.file->path() + ": tensor '" + name + "' is not in " + index_path +
                         " weight_map");
      }
    }
  }

  const SafetensorsFile* AddFile(const std::string& path) {
    files_.push_back(std::make_unique<SafetensorsFile>(SafetensorsFile::Open(path)));
    const SafetensorsFile* file = files_.back().get();
    for (const std::string& name : file->names()) {
      auto [it, inserted] = tensors_.emplace(name, Location{file, &file->Entry(name)});
      if (!inserted) {
        throw TrainError(path + ": tensor '" + name + "' is also in " + it->second.file->path());
      }
    }
    return file;
  }

  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, Location> tensors_;
};

// Stored tensors the model does not need but Hugging Face checkpoints may carry.
bool IsToleratedExtra(const std::string& name, const LlamaConfig& config) {
  const std::string inv_freq = "rotary_emb.inv_freq";
  if (name.size() >= inv_freq.size() &&
      name.compare(name.size() - inv_freq.size(), inv_freq.size(), inv_freq) == 0) {
    return true;
  }
  return config.tie_word_embeddings && name == "lm_head.weight";
}

bool EndsWith(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string JoinProblems(const std::string& model_dir, const std::vector<std::string>& problems) {
  std::string message = model_dir + ": weights do not match config.json: ";
  for (size_t i = 0; i < problems.size() && i < kMaxListedProblems; ++i) {
    message += (i ? "; " : "") + problems[i];
  }
  if (problems.size() > kMaxListedProblems) {
    message += "; and " + std::to_string(problems.size() - kMaxListedProblems) + " more";
  }
  return message;
}

std::string TorchDtypeName(torch::Dtype dtype) {
  if (dtype == torch::kBFloat16) return "bfloat16";
  if (dtype == torch::kFloat16) return "float16";
  if (dtype == torch::kFloat32) return "float32";
  throw TrainError(std::string("storage dtype: must be float32, bfloat16 or float16, got ") +
                   c10::toString(dtype));
}

}  // namespace

LlamaForCausalLM LoadPretrained(const std::string& model_dir, const LoraOptions* lora,
                                const ModelOptions& options, torch::Device device) {
  const LlamaConfig config =
      LlamaConfig::FromFile((std::filesystem::path(model_dir) / "config.json").string());
  LlamaForCausalLM model(config, lora, options);
  WeightSource source(model_dir);

  std::vector<std::string> problems;
  std::set<std::string> used;
  torch::NoGradGuard no_grad;
  for (auto& [name, param] : model->NamedBaseWeights(/*merge_lora=*/false)) {
    auto it = source.tensors().find(name);
    if (it == source.tensors().end()) {
      problems.push_back("missing tensor '" + name + "'");
      continue;
    }
    used.insert(name);
    const SafetensorsEntry& entry = *it->second.entry;
    if (entry.shape != param.sizes().vec()) {
      problems.push_back("tensor '" + name + "' has shape " + ShapeString(entry.shape) + " in " +
                         it->second.file->path() + ", the model expects " +
                         ShapeString(param.sizes()));
      continue;
    }
    if (entry.dtype != "F32" && entry.dtype != "BF16" && entry.dtype != "F16") {
      problems.push_back("tensor '" + name + "' is stored as " + entry.dtype +
                         " (supported: F32, BF16, F16)");
      continue;
    }
    param.copy_(it->second.file->Tensor(name));  // converts to the parameter's dtype
  }
  for (const auto& [name, location] : source.tensors()) {
    if (used.count(name) == 0 && !IsToleratedExtra(name, config)) {
      problems.push_back("unexpected tensor '" + name + "' in " + location.file->path());
    }
  }
  if (!problems.empty()) throw TrainError(JoinProblems(model_dir, problems));
  // On the CPU, before the move: only the packed projections reach the device.
  model->QuantizeBaseWeights();
  model->to(device);
  return model;
}

LlamaForCausalLM CreateRandom(const LlamaConfig& config, const ModelOptions& options, uint64_t seed,
                              const LoraOptions* lora) {
  LlamaForCausalLM model(config, lora, options);
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  torch::NoGradGuard no_grad;
  for (auto& [name, param] : model->NamedBaseWeights(/*merge_lora=*/false)) {
    if (EndsWith(name, "norm.weight")) {
      param.fill_(1.0);
    } else if (EndsWith(name, ".bias")) {
      param.zero_();
    } else {
      // Drawn in fp32 so the values do not depend on the storage dtype's sampler.
      torch::Tensor values = torch::empty(param.sizes(), torch::kFloat32);  // param's shape
      values.normal_(0.0, config.initializer_range, generator);
      param.copy_(values);
    }
  }
  model->QuantizeBaseWeights();
  return model;
}

void SaveFullModel(LlamaForCausalLM& model, const std::string& dir, torch::Dtype storage_dtype) {
  LlamaConfig config = model->config();
  config.torch_dtype = TorchDtypeName(storage_dtype);
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) throw TrainError(dir + ": cannot create: " + error.message());
  const std::filesystem::path folder(dir);
  WriteFileAtomically((folder / "config.json").string(), config.ToJson().dump(2) + "\n");
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (auto& [name, weight] : model->NamedBaseWeights(/*merge_lora=*/true)) {
    tensors.emplace_back(name, weight.to(storage_dtype));
  }
  WriteSafetensors((folder / "model.safetensors").string(), tensors, {{"format", "pt"}});
}

}  // namespace tuneledger::train
