// Shape legend: D hidden; "..." any leading dims (B,T in the model).
#include "worker/trainer/model/rms_norm.h"

#include <torch/torch.h>

namespace tuneledger::train {

RmsNormImpl::RmsNormImpl(int64_t hidden_size, double eps) : eps_(eps) {
  weight = register_parameter("weight", torch::ones({hidden_size}),  // [D]
                              /*requires_grad=*/false);
}

torch::Tensor RmsNormImpl::forward(const torch::Tensor& x) {
  torch::Tensor x32 = x.to(torch::kFloat32);                       // [...,D]
  torch::Tensor variance = x32.pow(2).mean(-1, /*keepdim=*/true);  // [...,1]
  return weight * (x32 * torch::rsqrt(variance + eps_));           // [...,D]
}

}  // namespace tuneledger::train
