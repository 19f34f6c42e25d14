// Rotary position embedding (RoPE) in Hugging Face's "rotate_half" convention: the head dim is
// split into two halves (not interleaved pairs).
//
// Shape legend: B batch, T tokens, H heads, Dh head dim.
//
//   inv_freq[i] = 1 / theta^(2i / Dh)                 i in [0, Dh/2)   (then scaled, below)
//   angle[t,i]  = t * inv_freq[i];  emb = cat(angle, angle)      [T,Dh]
//   cos = cos(emb) * a, sin = sin(emb) * a                        [T,Dh]
//   rotate_half(x) = cat(-x[..., Dh/2:], x[..., :Dh/2])
//   RoPE(x) = x * cos + rotate_half(x) * sin          x [B,H,T,Dh]
//
// Scaling (model_config.h RopeScaling, Hugging Face's formulas; a = 1 unless yarn):
//   linear   inv_freq / factor
//   dynamic  (NTK) for T > max_position_embeddings: theta' = theta * (factor T / max_pos -
//            (factor - 1))^(Dh / (Dh - 2)); unchanged for shorter sequences
//   llama3   wavelengths 2 pi / inv_freq longer than original_max_pos / low_freq_factor are
//            divided by factor, shorter than original_max_pos / high_freq_factor kept, the ones
//            between interpolated smoothly
//   yarn     per-dimension blend of inv_freq and inv_freq / factor over the correction range of
//            beta_fast .. beta_slow rotations; a = attention_factor (default 0.1 ln(factor) + 1)
//
// All in fp32. Thread safety: none; each model owns its RotaryEmbedding.
#ifndef TUNELEDGER_WORKER_TRAINER_MODEL_ROTARY_EMBEDDING_H_
#define TUNELEDGER_WORKER_TRAINER_MODEL_ROTARY_EMBEDDING_H_

#include <torch/types.h>

#include <cstdint>
#include <utility>

#include "lm/model_config.h"

namespace tuneledger::train {

class RotaryEmbedding {
 public:
  // Unscaled RoPE.
  RotaryEmbedding(int64_t head_dim, double rope_theta);
  // RoPE as `config` says (theta, scaling, max_position_embeddings).
  explicit RotaryEmbedding(const LlamaConfig& config);

  // cos and sin for positions [0, T) on `device`: each [T,Dh] fp32. Cached per device and
  // grown on demand, so the common case is a slice (dynamic scaling past max_position_embeddings
  // depends on T itself, so those lengths get their own tables).
  std::pair<torch::Tensor, torch::Tensor> CosSin(int64_t num_tokens, torch::Device device);

  // The inverse frequencies for a sequence of `num_tokens`, scaling applied: [Dh/2] fp32.
  torch::Tensor InvFreq(int64_t num_tokens) const;
  // The factor cos and sin are multiplied by (yarn's attention factor; 1 otherwise).
  double AttentionScaling() const;

  int64_t head_dim() const { return head_dim_; }
  double theta() const { return theta_; }

 private:
  // Whether InvFreq depends on the length `num_tokens` (dynamic scaling past max_pos).
  bool LengthDependent(int64_t num_tokens) const;

  int64_t head_dim_;
  double theta_;
  RopeScaling scaling_;
  int64_t max_position_embeddings_ = 0;
  torch::Tensor cos_cache_;              // [Tcache,Dh] fp32
  torch::Tensor sin_cache_;              // [Tcache,Dh] fp32
  bool cache_length_dependent_ = false;  // the cache holds one exact length, not a prefix
};

// cat(-x2, x1) over the last dim. x [..., Dh] -> [..., Dh].
torch::Tensor RotateHalf(const torch::Tensor& x);
// x * cos + rotate_half(x) * sin. x [B,H,T,Dh]; cos, sin [T,Dh] -> [B,H,T,Dh].
torch::Tensor ApplyRotary(const torch::Tensor& x, const torch::Tensor& cos,
                          const torch::Tensor& sin);

}  // namespace tuneledger::train

#endif  // TUNELEDGER_WORKER_TRAINER_MODEL_ROTARY_EMBEDDING_H_
