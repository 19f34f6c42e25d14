// Shape legend: B batch, T tokens, H heads, Dh head dim.
#include "worker/trainer/rotary_embedding.h"

#include <torch/torch.h>

#include <algorithm>

namespace tuneledger::train {

RotaryEmbedding::RotaryEmbedding(int64_t head_dim, double rope_theta)
    : head_dim_(head_dim), theta_(rope_theta) {}

std::pair<torch::Tensor, torch::Tensor> RotaryEmbedding::CosSin(int64_t num_tokens,
                                                                torch::Device device) {
  if (!cos_cache_.defined() || cos_cache_.size(0) < num_tokens || cos_cache_.device() != device) {
    // Grow geometrically so that generation (T, T+1, ...) does not rebuild every step.
    const int64_t length =
        std::max<int64_t>(num_tokens, cos_cache_.defined() ? 2 * cos_cache_.size(0) : num_tokens);
    // As HF: inv_freq in fp32 from the int64 even indices, positions in fp32.
    torch::Tensor exponents =
        torch::arange(0, head_dim_, 2, torch::kInt64).to(torch::kFloat32) / head_dim_;   // [Dh/2]
    torch::Tensor inv_freq = 1.0 / torch::pow(theta_, exponents);                        // [Dh/2]
    torch::Tensor positions = torch::arange(length, torch::kInt64).to(torch::kFloat32);  // [T]
    torch::Tensor angles = torch::outer(positions, inv_freq);                            // [T,Dh/2]
    torch::Tensor emb = torch::cat({angles, angles}, -1);                                // [T,Dh]
    cos_cache_ = emb.cos().to(device);                                                   // [T,Dh]
    sin_cache_ = emb.sin().to(device);                                                   // [T,Dh]
  }
  return {cos_cache_.narrow(0, 0, num_tokens), sin_cache_.narrow(0, 0, num_tokens)};
}

torch::Tensor RotateHalf(const torch::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  torch::Tensor x1 = x.narrow(-1, 0, half);     // [...,Dh/2]
  torch::Tensor x2 = x.narrow(-1, half, half);  // [...,Dh/2]
  return torch::cat({-x2, x1}, -1);             // [...,Dh]
}

torch::Tensor ApplyRotary(const torch::Tensor& x, const torch::Tensor& cos,
                          const torch::Tensor& sin) {
  return x * cos + RotateHalf(x) * sin;  // [B,H,T,Dh]
}

}  // namespace tuneledger::train
