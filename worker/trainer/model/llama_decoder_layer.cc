// Shape legend: B batch, T tokens, D hidden, Dh head dim.
#include "worker/trainer/model/llama_decoder_layer.h"

#include <torch/torch.h>

namespace tuneledger::train {

LlamaDecoderLayerImpl::LlamaDecoderLayerImpl(const LlamaConfig& config, torch::Dtype base_dtype,
                                             const LoraOptions* lora) {
  input_layernorm =
      register_module("input_layernorm", RmsNorm(config.hidden_size, config.rms_norm_eps));
  self_attn = register_module("self_attn", LlamaAttention(config, base_dtype, lora));
  post_attention_layernorm =
      register_module("post_attention_layernorm", RmsNorm(config.hidden_size, config.rms_norm_eps));
  mlp = register_module("mlp", LlamaMlp(config, base_dtype, lora));
}

torch::Tensor LlamaDecoderLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& cos,
                                             const torch::Tensor& sin) {
  torch::Tensor h = x + self_attn(input_layernorm(x), cos, sin);  // [B,T,D]
  return h + mlp(post_attention_layernorm(h));                    // [B,T,D]
}

}  // namespace tuneledger::train
