// One pre-norm Llama decoder layer, as in Hugging Face LlamaDecoderLayer.
//
// Shape legend: B batch, T tokens, D hidden, Dh head dim.
//
//   h = x + self_attn(input_layernorm(x))
//   y = h + mlp(post_attention_layernorm(h))             x, h, y [B,T,D]
//
// Thread safety: none (a torch::nn::Module).
#ifndef TUNELEDGER_WORKER_TRAINER_MODEL_LLAMA_DECODER_LAYER_H_
#define TUNELEDGER_WORKER_TRAINER_MODEL_LLAMA_DECODER_LAYER_H_

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "lm/model_config.h"
#include "worker/trainer/model/llama_attention.h"
#include "worker/trainer/model/llama_mlp.h"
#include "worker/trainer/model/lora_linear.h"
#include "worker/trainer/model/rms_norm.h"

namespace tuneledger::train {

class LlamaDecoderLayerImpl : public torch::nn::Module {
 public:
  LlamaDecoderLayerImpl(const LlamaConfig& config, torch::Dtype base_dtype,
                        const LoraOptions* lora);

  // x [B,T,D] fp32; cos, sin [T,Dh] fp32 -> [B,T,D] fp32.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

  RmsNorm input_layernorm{nullptr};
  LlamaAttention self_attn{nullptr};
  RmsNorm post_attention_layernorm{nullptr};
  LlamaMlp mlp{nullptr};
};
TORCH_MODULE(LlamaDecoderLayer);

}  // namespace tuneledger::train

#endif  // TUNELEDGER_WORKER_TRAINER_MODEL_LLAMA_DECODER_LAYER_H_
