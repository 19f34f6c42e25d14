// Shape legend: D hidden; "..." any leading dims (B,T in the model).
#include "worker/trainer/model/rms_norm.h"

#include <torch/torch.h>

#include "worker/trainer/model/fused_ops.h"

namespace tuneledger::train {

RmsNormImpl::RmsNormImpl(int64_t hidden_size, double eps) : eps_(eps) {
  weight = register_parameter("weight", torch::ones({hidden_size}),  // [D]
                              /*requires_grad=*/false);
}

torch::Tensor RmsNormImpl::forward(const torch::Tensor& x) {
  return FusedRmsNorm(x, weight, eps_);  // [...,D]
}

}  // namespace tuneledger::train
