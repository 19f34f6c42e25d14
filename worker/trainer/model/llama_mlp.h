// SwiGLU feed-forward block as in Hugging Face LlamaMLP.
//
// Shape legend: B batch, T tokens, D hidden, F intermediate.
//
//   y = down_proj( silu(gate_proj(x)) * up_proj(x) )      x [B,T,D] -> [B,T,F] -> [B,T,D]
//
// gate_proj, up_proj [F,D] and down_proj [D,F] are LoraLinear modules (HF names).
//
// Thread safety: none (a torch::nn::Module).
#ifndef TUNELEDGER_WORKER_TRAINER_MODEL_LLAMA_MLP_H_
#define TUNELEDGER_WORKER_TRAINER_MODEL_LLAMA_MLP_H_

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "lm/model_config.h"
#include "worker/trainer/model/lora_linear.h"

namespace tuneledger::train {

class LlamaMlpImpl : public torch::nn::Module {
 public:
  LlamaMlpImpl(const LlamaConfig& config, torch::Dtype base_dtype, const LoraOptions* lora);

  // x [B,T,D] fp32 -> [B,T,D] fp32.
  torch::Tensor forward(const torch::Tensor& x);

  LoraLinear gate_proj{nullptr};  // [F,D]
  LoraLinear up_proj{nullptr};    // [F,D]
  LoraLinear down_proj{nullptr};  // [D,F]
};
TORCH_MODULE(LlamaMlp);

}  // namespace tuneledger::train

#endif  // TUNELEDGER_WORKER_TRAINER_MODEL_LLAMA_MLP_H_
