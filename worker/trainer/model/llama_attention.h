// Causal self-attention with grouped-query attention (GQA) and RoPE, as in Hugging Face
// LlamaAttention / Qwen2Attention.
//
// Shape legend: B batch, T tokens, D hidden, H heads, Hkv kv heads, Dh head dim.
//
//   q = x Wq^T (+bq) -> [B,H,T,Dh];  k = x Wk^T (+bk), v = x Wv^T (+bv) -> [B,Hkv,T,Dh]
//   q, k = RoPE(q), RoPE(k)
//   k, v = repeat_kv(k, v): kv head j serves query heads j*H/Hkv .. (j+1)*H/Hkv - 1
//   a = softmax(q k^T / sqrt(Dh) + causal_mask) v                 [B,H,T,Dh]
//   y = a' Wo^T (+bo), a' = a as [B,T,H*Dh]                         [B,T,D]
//
// The attention core has two paths: PlainAttention (the equations written out: the reference,
// and the only path on LibTorch < 2.0) and, on LibTorch >= 2.0, the fused
// scaled_dot_product_attention (selected by AttentionKernel). A test checks they agree.
// The projections are LoraLinear modules named q_proj, k_proj, v_proj, o_proj.
//
// Thread safety: none (a torch::nn::Module).
#ifndef TUNELEDGER_WORKER_TRAINER_MODEL_LLAMA_ATTENTION_H_
#define TUNELEDGER_WORKER_TRAINER_MODEL_LLAMA_ATTENTION_H_

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "lm/model_config.h"
#include "worker/trainer/model/lora_linear.h"

namespace tuneledger::train {

enum class AttentionKernel {
  kPlain,  // the equations written out (reference)
  kFused,  // scaled_dot_product_attention (the default)
};

// Causal attention core. q [B,H,T,Dh]; k, v [B,Hkv,T,Dh] (H a multiple of Hkv) -> [B,H,T,Dh].
torch::Tensor PlainAttention(const torch::Tensor& q, const torch::Tensor& k,
                             const torch::Tensor& v);
// Same result through scaled_dot_product_attention (flash / memory-efficient kernels); with
// GQA (Hkv < H) on LibTorch >= 2.5 the kernel reads the Hkv heads itself (enable_gqa) instead
// of repeated copies.
torch::Tensor FusedAttention(const torch::Tensor& q, const torch::Tensor& k,
                             const torch::Tensor& v);
// kv [B,Hkv,T,Dh] -> [B,Hkv*n_rep,T,Dh] (HF repeat_kv: each kv head repeated n_rep times).
torch::Tensor RepeatKv(const torch::Tensor& kv, int64_t n_rep);

class LlamaAttentionImpl : public torch::nn::Module {
 public:
  LlamaAttentionImpl(const LlamaConfig& config, torch::Dtype base_dtype, const LoraOptions* lora);

  // x [B,T,D] fp32; cos, sin [T,Dh] fp32 -> [B,T,D] fp32.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

  void set_kernel(AttentionKernel kernel) { kernel_ = kernel; }

  LoraLinear q_proj{nullptr};  // [H*Dh, D]
  LoraLinear k_proj{nullptr};  // [Hkv*Dh, D]
  LoraLinear v_proj{nullptr};  // [Hkv*Dh, D]
  LoraLinear o_proj{nullptr};  // [D, H*Dh]

 private:
  int64_t num_heads_;
  int64_t num_kv_heads_;
  int64_t head_dim_;
  AttentionKernel kernel_;
};
TORCH_MODULE(LlamaAttention);

}  // namespace tuneledger::train

#endif  // TUNELEDGER_WORKER_TRAINER_MODEL_LLAMA_ATTENTION_H_
