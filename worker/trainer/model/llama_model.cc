// Shape legend: B batch, T tokens, D hidden, H heads, Hkv kv heads, Dh head dim, V vocab,
// F intermediate, r LoRA rank.
#include "worker/trainer/model/llama_model.h"

#include <torch/torch.h>

#include <map>
#include <string>

#include "lm/trainer_error.h"
#include "worker/trainer/model/checkpointed_layer.h"

namespace tuneledger::train {
namespace {

bool IsLoraName(const std::string& name) {
  return name.find(".lora_A.") != std::string::npos || name.find(".lora_B.") != std::string::npos;
}

// The invariants the modules rely on, for configs built in code (FromJson checks them too).
void CheckArchitecture(const LlamaConfig& config) {
  auto positive = [](int64_t value, const char* field) {
    if (value <= 0) {
      throw TrainError(std::string("model config: ") + field + ": must be > 0, got " +
                       std::to_string(value));
    }
  };
  positive(config.vocab_size, "vocab_size");
  positive(config.hidden_size, "hidden_size");
  positive(config.intermediate_size, "intermediate_size");
  positive(config.num_hidden_layers, "num_hidden_layers");
  positive(config.num_attention_heads, "num_attention_heads");
  positive(config.num_key_value_heads, "num_key_value_heads");
  positive(config.head_dim, "head_dim");
  if (config.num_attention_heads % config.num_key_value_heads != 0) {
    throw TrainError("model config: num_key_value_heads: must divide num_attention_heads");
  }
  if (config.head_dim % 2 != 0) throw TrainError("model config: head_dim: must be even");
}

void CheckFloatDtype(torch::Dtype dtype, const char* field) {
  if (dtype != torch::kFloat32 && dtype != torch::kBFloat16 && dtype != torch::kFloat16) {
    throw TrainError(std::string("model options: ") + field +
                     ": must be float32, bfloat16 or float16, got " + c10::toString(dtype));
  }
}

}  // namespace

LlamaModelImpl::LlamaModelImpl(const LlamaConfig& config, const LoraOptions* lora,
                               const ModelOptions& options)
    : gradient_checkpointing(options.gradient_checkpointing),
      rotary_(config),
      activation_dtype_(options.activation_dtype) {
  torch::Tensor embedding = torch::empty({config.vocab_size, config.hidden_size},
                                         torch::dtype(options.base_dtype));  // [V,D]
  embed_tokens = register_module(
      "embed_tokens",
      torch::nn::Embedding(
          torch::nn::EmbeddingOptions(config.vocab_size, config.hidden_size)._weight(embedding)));
  embed_tokens->weight.requires_grad_(false);
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    LlamaDecoderLayer layer(config, options.base_dtype, lora);
    layers->push_back(layer);
    decoder_layers_.push_back(layer);
  }
  norm = register_module("norm", RmsNorm(config.hidden_size, config.rms_norm_eps));
}

torch::Tensor LlamaModelImpl::forward(const torch::Tensor& input_ids) {
  const int64_t tokens = input_ids.size(1);
  torch::Tensor h = embed_tokens(input_ids).to(activation_dtype_);  // [B,T,D]
  auto [cos32, sin32] = rotary_.CosSin(tokens, h.device());         // [T,Dh] each, fp32
  // In the activations' dtype, as Hugging Face casts them, so that RoPE does not promote q, k.
  torch::Tensor cos = cos32.to(activation_dtype_), sin = sin32.to(activation_dtype_);
  const bool checkpoint = gradient_checkpointing && is_training();
  for (LlamaDecoderLayer& layer : decoder_layers_) {
    h = checkpoint ? CheckpointedLayerForward(layer, h, cos, sin) : layer(h, cos, sin);  // [B,T,D]
  }
  return norm(h);  // [B,T,D]
}

LlamaForCausalLMImpl::LlamaForCausalLMImpl(const LlamaConfig& config, const LoraOptions* lora,
                                           const ModelOptions& options)
    : config_(config), options_(options) {
  CheckArchitecture(config);
  CheckFloatDtype(options.base_dtype, "base_dtype");
  CheckFloatDtype(options.activation_dtype, "activation_dtype");
  if (lora != nullptr) {
    ValidateLoraOptions(*lora);
    lora_ = *lora;
  }
  if (options.train_base && options.quantize_base != quant::BaseQuantization::kNone) {
    throw TrainError(std::string("model options: quantize_base ") +
                     quant::BaseQuantizationName(options.quantize_base) +
                     " freezes the base weights: not with train_base");
  }
  model = register_module("model", LlamaModel(config, lora, options));
  if (!config.tie_word_embeddings) {
    lm_head = register_module("lm_head", LoraLinear(config.hidden_size, config.vocab_size,
                                                    /*bias=*/false, options.base_dtype,
                                                    /*lora=*/nullptr));
  }
  if (options.train_base) {
    for (auto& named : named_parameters()) {
      if (!IsLoraName(named.key())) named.value().requires_grad_(true);
    }
  }
}

torch::Tensor LlamaForCausalLMImpl::forward(const torch::Tensor& input_ids) {
  return BaseLinear(Hidden(input_ids), LmHeadWeight(), torch::Tensor())
      .to(torch::kFloat32);  // [B,T,V]
}

torch::Tensor LlamaForCausalLMImpl::Hidden(const torch::Tensor& input_ids) {
  return model(input_ids);  // [B,T,D]
}

torch::Tensor LlamaForCausalLMImpl::LmHeadWeight() {
  return config_.tie_word_embeddings ? model->embed_tokens->weight : lm_head->weight;  // [V,D]
}

std::vector<std::pair<std::string, torch::Tensor>> LlamaForCausalLMImpl::NamedLoraParameters() {
  std::vector<std::pair<std::string, torch::Tensor>> result;
  for (const auto& named : named_parameters()) {
    if (IsLoraName(named.key())) result.emplace_back(named.key(), named.value());
  }
  return result;
}

std::vector<torch::Tensor> LlamaForCausalLMImpl::TrainableParameters() {
  std::vector<torch::Tensor> result;
  for (const auto& named : named_parameters()) {
    if (named.value().requires_grad()) result.push_back(named.value());
  }
  return result;
}

int64_t LlamaForCausalLMImpl::ParameterCount() {
  int64_t count = 0;
  for (const torch::Tensor& parameter : parameters()) count += parameter.numel();
  for (const auto& [name, linear] : DecoderProjections()) {
    if (linear->quantized()) {
      count += linear->quantized_weight().rows * linear->quantized_weight().cols;
    }
  }
  return count;
}

std::vector<std::pair<std::string, torch::Tensor>> LlamaForCausalLMImpl::NamedBaseWeights(
    bool merge_lora) {
  // "<module>.weight" -> its LoraLinear, where the weight is not the parameter as it is.
  std::map<std::string, LoraLinearImpl*> adapted;
  for (const auto& named : named_modules()) {
    if (auto* linear = named.value()->as<LoraLinearImpl>()) {
      const bool merge = merge_lora && linear->has_lora() && !linear->merged();
      if (merge || linear->quantized()) adapted[named.key() + ".weight"] = linear;
    }
  }
  torch::NoGradGuard no_grad;
  std::vector<std::pair<std::string, torch::Tensor>> result;
  for (const auto& named : named_parameters()) {
    if (IsLoraName(named.key())) continue;
    auto it = adapted.find(named.key());
    if (it == adapted.end()) {
      result.emplace_back(named.key(), named.value().detach());
    } else if (merge_lora) {
      result.emplace_back(named.key(), it->second->MergedWeight());  // [out,in] fp32
    } else {
      result.emplace_back(named.key(), DequantizeWeight(it->second->quantized_weight(),
                                                        torch::kFloat32));  // [out,in] fp32
    }
  }
  return result;
}

void LlamaForCausalLMImpl::SetGradientCheckpointing(bool enabled) {
  options_.gradient_checkpointing = enabled;
  model->gradient_checkpointing = enabled;
}

void LlamaForCausalLMImpl::SetAttentionKernel(AttentionKernel kernel) {
  for (LlamaDecoderLayer& layer : model->decoder_layers()) layer->self_attn->set_kernel(kernel);
}

void LlamaForCausalLMImpl::SetDropoutRows(int64_t offset, int64_t batch_rows) {
  for (const auto& module : modules()) {
    if (auto* linear = module->as<LoraLinearImpl>()) linear->SetDropoutRows(offset, batch_rows);
  }
}

std::vector<std::pair<std::string, LoraLinearImpl*>> LlamaForCausalLMImpl::DecoderProjections() {
  std::vector<std::pair<std::string, LoraLinearImpl*>> result;
  for (const auto& named : model->layers->named_modules("model.layers")) {
    if (auto* linear = named.value()->as<LoraLinearImpl>()) {
      result.emplace_back(named.key(), linear);
    }
  }
  return result;
}

void LlamaForCausalLMImpl::QuantizeBaseWeights() {
  if (options_.quantize_base == quant::BaseQuantization::kNone) return;
  for (auto& [name, linear] : DecoderProjections()) linear->QuantizeBase(options_.quantize_base);
}

void LlamaForCausalLMImpl::MergeLora() {
  for (const auto& module : modules()) {
    if (auto* linear = module->as<LoraLinearImpl>()) linear->Merge();
  }
}

}  // namespace tuneledger::train
