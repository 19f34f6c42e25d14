#include "worker/trainer/recipe/loss_scaler.h"

#include <torch/torch.h>

namespace tuneledger::train {

DynamicLossScaler::DynamicLossScaler(bool enabled, double initial_scale, int64_t growth_interval)
    : enabled_(enabled), growth_interval_(growth_interval) {
  state_.scale = initial_scale;
}

bool DynamicLossScaler::UnscaleGradients(const std::vector<torch::Tensor>& parameters) const {
  if (!enabled_) return true;
  torch::NoGradGuard no_grad;
  bool finite = true;
  for (const auto& parameter : parameters) {
    torch::Tensor grad = parameter.grad();
    if (!grad.defined()) continue;
    grad.div_(state_.scale);
    finite = finite && torch::isfinite(grad).all().item<bool>();
  }
  return finite;
}

void DynamicLossScaler::Update(bool gradients_finite) {
  if (!enabled_) return;
  if (!gradients_finite) {
    state_.scale = std::max(1.0, state_.scale * 0.5);
    state_.good_steps = 0;
    return;
  }
  if (++state_.good_steps >= growth_interval_) {
    state_.scale *= 2.0;
    state_.good_steps = 0;
  }
}

}  // namespace tuneledger::train
