// Shape legend: D hidden; "..." any leading dims (B,T in the model).
#include "worker/trainer/model/rms_norm.h"

#include <torch/torch.h>

namespace tuneledger::train {

RmsNormImpl::RmsNormImpl(int64_t hidden_size, double eps) : eps_(eps) {
  weight = register_parameter("weight", torch::ones({hidden_size}),  // [D]
                              /*requires_grad=*/false);
}

torch::Tensor RmsNormImpl::forward(const torch::Tensor& x) {
  const torch::Dtype dtype = x.scalar_type();
  torch::Tensor x32 = x.to(torch::kFloat32);                                           // [...,D]
  torch::Tensor inv_rms = torch::rsqrt(x32.pow(2).mean(-1, /*keepdim=*/true) + eps_);  // [...,1]
  // Normalised in fp32, then scaled in x's dtype as Hugging Face does (.to() is a no-op in fp32).
  return weight.to(dtype) * (x32 * inv_rms).to(dtype);  // [...,D]
}

}  // namespace tuneledger::train
