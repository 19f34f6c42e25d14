// Rotary position embedding (RoPE) in Hugging Face's "rotate_half" convention: the head dim is
// split into two halves (not interleaved pairs).
//
// Shape legend: B batch, T tokens, H heads, Dh head dim.
//
//   inv_freq[i] = 1 / theta^(2i / Dh)                 i in [0, Dh/2)
//   angle[t,i]  = t * inv_freq[i];  emb = cat(angle, angle)      [T,Dh]
//   cos = cos(emb), sin = sin(emb)                                [T,Dh]
//   rotate_half(x) = cat(-x[..., Dh/2:], x[..., :Dh/2])
//   RoPE(x) = x * cos + rotate_half(x) * sin          x [B,H,T,Dh]
//
// All in fp32. Thread safety: none; each model owns its RotaryEmbedding.
#ifndef TUNELEDGER_WORKER_TRAINER_ROTARY_EMBEDDING_H_
#define TUNELEDGER_WORKER_TRAINER_ROTARY_EMBEDDING_H_

#include <torch/types.h>

#include <cstdint>
#include <utility>

namespace tuneledger::train {

class RotaryEmbedding {
 public:
  RotaryEmbedding(int64_t head_dim, double rope_theta);

  // cos and sin for positions [0, T) on `device`: each [T,Dh] fp32. Cached per device and
  // grown on demand, so the common case is a slice.
  std::pair<torch::Tensor, torch::Tensor> CosSin(int64_t num_tokens, torch::Device device);

  int64_t head_dim() const { return head_dim_; }
  double theta() const { return theta_; }

 private:
  int64_t head_dim_;
  double theta_;
  torch::Tensor cos_cache_;  // [Tcache,Dh] fp32
  torch::Tensor sin_cache_;  // [Tcache,Dh] fp32
};

// cat(-x2, x1) over the last dim. x [..., Dh] -> [..., Dh].
torch::Tensor RotateHalf(const torch::Tensor& x);
// x * cos + rotate_half(x) * sin. x [B,H,T,Dh]; cos, sin [T,Dh] -> [B,H,T,Dh].
torch::Tensor ApplyRotary(const torch::Tensor& x, const torch::Tensor& cos,
                          const torch::Tensor& sin);

}  // namespace tuneledger::train

#endif  // TUNELEDGER_WORKER_TRAINER_ROTARY_EMBEDDING_H_
