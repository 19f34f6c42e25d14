// Shape legend: B batch, T tokens, D hidden, H heads, Hkv kv heads, Dh head dim.
#include "worker/trainer/model/llama_attention.h"

#include <torch/torch.h>
#include <torch/version.h>

#include <cmath>
#include <limits>
#include <optional>

#include "worker/trainer/model/fused_ops.h"

namespace tuneledger::train {

torch::Tensor RepeatKv(const torch::Tensor& kv, int64_t n_rep) {
  if (n_rep == 1) return kv;
  const int64_t batch = kv.size(0), kv_heads = kv.size(1), tokens = kv.size(2),
                head_dim = kv.size(3);
  return kv.unsqueeze(2)
      .expand({batch, kv_heads, n_rep, tokens, head_dim})     // [B,Hkv,n_rep,T,Dh]
      .reshape({batch, kv_heads * n_rep, tokens, head_dim});  // [B,H,T,Dh]
}

torch::Tensor PlainAttention(const torch::Tensor& q, const torch::Tensor& k,
                             const torch::Tensor& v) {
  const int64_t n_rep = q.size(1) / k.size(1);
  const int64_t tokens = q.size(2);
  torch::Tensor keys = RepeatKv(k, n_rep);    // [B,H,T,Dh]
  torch::Tensor values = RepeatKv(v, n_rep);  // [B,H,T,Dh]
  torch::Tensor scores =
      torch::matmul(q, keys.transpose(2, 3)) / std::sqrt(static_cast<double>(q.size(3)));
  // scores [B,H,T,T]; position i attends to j <= i.
  torch::Tensor future =
      torch::ones({tokens, tokens}, torch::dtype(torch::kBool).device(q.device()))
          .triu(1);  // [T,T]
  scores = scores.masked_fill(future, -std::numeric_limits<float>::infinity());
  torch::Tensor probs = torch::softmax(scores, -1, torch::kFloat32).to(q.scalar_type());
  return torch::matmul(probs, values);  // [B,H,T,Dh]
}

torch::Tensor FusedAttention(const torch::Tensor& q, const torch::Tensor& k,
                             const torch::Tensor& v) {
  const int64_t n_rep = q.size(1) / k.size(1);
#if TORCH_VERSION_MAJOR > 2 || TORCH_VERSION_MINOR >= 5
  // GQA inside the kernel (LibTorch >= 2.5): k and v stay [B,Hkv,T,Dh], so neither the forward
  // nor the saved tensors hold the repeated [B,H,T,Dh] copies, and the backward sums each kv
  // head's gradient over its query heads in the kernel. Same as HF transformers' sdpa path
  // with no attention mask.
  if (n_rep > 1) {
    return at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, /*dropout_p=*/0.0,
                                            /*is_causal=*/true, /*scale=*/std::nullopt,
                                            /*enable_gqa=*/true);  // [B,H,T,Dh]
  }
#endif
  return at::scaled_dot_product_attention(q, RepeatKv(k, n_rep), RepeatKv(v, n_rep),
                                          /*attn_mask=*/{}, /*dropout_p=*/0.0,
                                          /*is_causal=*/true);  // [B,H,T,Dh]
}

LlamaAttentionImpl::LlamaAttentionImpl(const LlamaConfig& config, torch::Dtype base_dtype,
                                       const LoraOptions* lora)
    : num_heads_(config.num_attention_heads),
      num_kv_heads_(config.num_key_value_heads),
      head_dim_(config.head_dim),
      kernel_(AttentionKernel::kFused) {
  auto lora_for = [&](const char* name) {
    return (lora != nullptr && IsLoraTarget(*lora, name)) ? lora : nullptr;
  };
  const int64_t hidden = config.hidden_size;
  q_proj =
      register_module("q_proj", LoraLinear(hidden, num_heads_ * head_dim_, config.attention_bias,
                                           base_dtype, lora_for("q_proj")));
  k_proj =
      register_module("k_proj", LoraLinear(hidden, num_kv_heads_ * head_dim_, config.attention_bias,
                                           base_dtype, lora_for("k_proj")));
  v_proj =
      register_module("v_proj", LoraLinear(hidden, num_kv_heads_ * head_dim_, config.attention_bias,
                                           base_dtype, lora_for("v_proj")));
  o_proj = register_module(
      "o_proj", LoraLinear(num_heads_ * head_dim_, hidden, config.attention_output_bias, base_dtype,
                           lora_for("o_proj")));
}

torch::Tensor LlamaAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& cos,
                                          const torch::Tensor& sin) {
  const int64_t batch = x.size(0), tokens = x.size(1);
  torch::Tensor q =
      q_proj(x).view({batch, tokens, num_heads_, head_dim_}).transpose(1, 2);  // [B,H,T,Dh]
  torch::Tensor k =
      k_proj(x).view({batch, tokens, num_kv_heads_, head_dim_}).transpose(1, 2);  // [B,Hkv,T,Dh]
  torch::Tensor v =
      v_proj(x).view({batch, tokens, num_kv_heads_, head_dim_}).transpose(1, 2);  // [B,Hkv,T,Dh]
  q = FusedRotary(q, cos, sin);                                                   // [B,H,T,Dh]
  k = FusedRotary(k, cos, sin);                                                   // [B,Hkv,T,Dh]
  torch::Tensor attended = kernel_ == AttentionKernel::kFused
                               ? FusedAttention(q, k, v)
                               : PlainAttention(q, k, v);  // [B,H,T,Dh]
  torch::Tensor merged =
      attended.transpose(1, 2).reshape({batch, tokens, num_heads_ * head_dim_});  // [B,T,H*Dh]
  return o_proj(merged);                                                          // [B,T,D]
}

}  // namespace tuneledger::train
