// Shape legend: B batch, T tokens, H heads, Dh head dim.
#include "worker/trainer/model/rotary_embedding.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

namespace tuneledger::train {

RotaryEmbedding::RotaryEmbedding(int64_t head_dim, double rope_theta)
    : head_dim_(head_dim), theta_(rope_theta) {}

RotaryEmbedding::RotaryEmbedding(const LlamaConfig& config)
    : head_dim_(config.head_dim),
      theta_(config.rope_theta),
      scaling_(config.rope_scaling),
      max_position_embeddings_(config.max_position_embeddings) {}

namespace {

// 1 / base^(2i / Dh), as Hugging Face computes it: fp32 exponents from int64 even indices.
torch::Tensor BaseInvFreq(int64_t head_dim, double base) {
  torch::Tensor exponents =
      torch::arange(0, head_dim, 2, torch::kInt64).to(torch::kFloat32) / head_dim;  // [Dh/2]
  return 1.0 / torch::pow(base, exponents);                                         // [Dh/2]
}

// yarn's "mscale".
double YarnMscale(double scale, double mscale) {
  return scale <= 1 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0;
}

}  // namespace

bool RotaryEmbedding::LengthDependent(int64_t num_tokens) const {
  return scaling_.type == RopeScaling::Type::kDynamic && num_tokens > max_position_embeddings_;
}

torch::Tensor RotaryEmbedding::InvFreq(int64_t num_tokens) const {
  using Type = RopeScaling::Type;
  const double dim = static_cast<double>(head_dim_);
  switch (scaling_.type) {
    case Type::kDefault:
      return BaseInvFreq(head_dim_, theta_);
    case Type::kLinear:
      return BaseInvFreq(head_dim_, theta_) / scaling_.factor;
    case Type::kDynamic: {
      if (!LengthDependent(num_tokens)) return BaseInvFreq(head_dim_, theta_);
      const double ratio = scaling_.factor * static_cast<double>(num_tokens) /
                               static_cast<double>(max_position_embeddings_) -
                           (scaling_.factor - 1);
      return BaseInvFreq(head_dim_, theta_ * std::pow(ratio, dim / (dim - 2)));
    }
    case Type::kLlama3: {
      torch::Tensor inv_freq = BaseInvFreq(head_dim_, theta_);  // [Dh/2]
      const double old_context = static_cast<double>(scaling_.original_max_position_embeddings);
      const double low_freq_wavelen = old_context / scaling_.low_freq_factor;
      const double high_freq_wavelen = old_context / scaling_.high_freq_factor;
      torch::Tensor wavelen = 2 * M_PI / inv_freq;  // [Dh/2]
      torch::Tensor scaled =
          torch::where(wavelen > low_freq_wavelen, inv_freq / scaling_.factor, inv_freq);
      torch::Tensor smooth = (old_context / wavelen - scaling_.low_freq_factor) /
                             (scaling_.high_freq_factor - scaling_.low_freq_factor);
      torch::Tensor smoothed = (1 - smooth) * scaled / scaling_.factor + smooth * scaled;
      torch::Tensor medium =
          (wavelen >= high_freq_wavelen).logical_and(wavelen <= low_freq_wavelen);
      return torch::where(medium, smoothed, scaled);  // [Dh/2]
    }
    case Type::kYarn: {
      const double original = static_cast<double>(scaling_.original_max_position_embeddings);
      // The dimension at which a frequency makes `rotations` turns over the original context.
      auto correction_dim = [&](double rotations) {
        return dim * std::log(original / (rotations * 2 * M_PI)) / (2 * std::log(theta_));
      };
      double low = correction_dim(scaling_.beta_fast);
      double high = correction_dim(scaling_.beta_slow);
      if (scaling_.truncate) {
        low = std::floor(low);
        high = std::ceil(high);
      }
      low = std::max(low, 0.0);
      high = std::min(high, dim - 1);
      if (low == high) high += 0.001;  // a ramp, not a step
      torch::Tensor pos_freqs =
          torch::pow(theta_, torch::arange(0, head_dim_, 2).to(torch::kFloat32) / dim);  // [Dh/2]
      torch::Tensor extrapolation = 1.0 / pos_freqs;
      torch::Tensor interpolation = 1.0 / (scaling_.factor * pos_freqs);
      torch::Tensor ramp = ((torch::arange(head_dim_ / 2, torch::kFloat32) - low) / (high - low))
                               .clamp(0, 1);  // [Dh/2]
      torch::Tensor extrapolation_factor = 1 - ramp;
      return interpolation * (1 - extrapolation_factor) + extrapolation * extrapolation_factor;
    }
  }
  return BaseInvFreq(head_dim_, theta_);
}

double RotaryEmbedding::AttentionScaling() const {
  if (scaling_.type != RopeScaling::Type::kYarn) return 1.0;
  if (scaling_.attention_factor) return *scaling_.attention_factor;
  if (scaling_.mscale && scaling_.mscale_all_dim) {
    return YarnMscale(scaling_.factor, *scaling_.mscale) /
           YarnMscale(scaling_.factor, *scaling_.mscale_all_dim);
  }
  return YarnMscale(scaling_.factor, 1.0);
}

std::pair<torch::Tensor, torch::Tensor> RotaryEmbedding::CosSin(int64_t num_tokens,
                                                                torch::Device device) {
  const bool length_dependent = LengthDependent(num_tokens);
  bool hit = cos_cache_.defined() && cos_cache_.device() == device &&
             cache_length_dependent_ == length_dependent;
  // A length-independent table serves every shorter length as a prefix; a length-dependent one
  // (dynamic scaling past max_position_embeddings) only its own length.
  if (hit) {
    hit = length_dependent ? cos_cache_.size(0) == num_tokens : cos_cache_.size(0) >= num_tokens;
  }
  if (!hit) {
    // Grow geometrically so that generation (T, T+1, ...) does not rebuild every step.
    int64_t length = num_tokens;
    if (!length_dependent && cos_cache_.defined() && !cache_length_dependent_) {
      length = std::max<int64_t>(num_tokens, 2 * cos_cache_.size(0));
    }
    torch::Tensor inv_freq = InvFreq(num_tokens);                                        // [Dh/2]
    torch::Tensor positions = torch::arange(length, torch::kInt64).to(torch::kFloat32);  // [T]
    torch::Tensor angles = torch::outer(positions, inv_freq);                            // [T,Dh/2]
    torch::Tensor emb = torch::cat({angles, angles}, -1);                                // [T,Dh]
    const double a = AttentionScaling();
    cos_cache_ = (emb.cos() * a).to(device);  // [T,Dh]
    sin_cache_ = (emb.sin() * a).to(device);  // [T,Dh]
    cache_length_dependent_ = length_dependent;
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
