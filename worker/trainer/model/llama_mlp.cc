// Shape legend: B batch, T tokens, D hidden, F intermediate.
#include "worker/trainer/model/llama_mlp.h"

#include <torch/torch.h>

#include "worker/trainer/model/fused_ops.h"

namespace tuneledger::train {

LlamaMlpImpl::LlamaMlpImpl(const LlamaConfig& config, torch::Dtype base_dtype,
                           const LoraOptions* lora) {
  auto lora_for = [&](const char* name) {
    return (lora != nullptr && IsLoraTarget(*lora, name)) ? lora : nullptr;
  };
  const int64_t hidden = config.hidden_size, inner = config.intermediate_size;
  gate_proj = register_module(
      "gate_proj", LoraLinear(hidden, inner, config.mlp_bias, base_dtype, lora_for("gate_proj")));
  up_proj = register_module(
      "up_proj", LoraLinear(hidden, inner, config.mlp_bias, base_dtype, lora_for("up_proj")));
  down_proj = register_module(
      "down_proj", LoraLinear(inner, hidden, config.mlp_bias, base_dtype, lora_for("down_proj")));
}

torch::Tensor LlamaMlpImpl::forward(const torch::Tensor& x) {
  torch::Tensor gated = FusedSwiGlu(gate_proj(x), up_proj(x));  // [B,T,F]
  return down_proj(gated);                                      // [B,T,D]
}

}  // namespace tuneledger::train
