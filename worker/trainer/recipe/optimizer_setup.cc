#include "worker/trainer/recipe/optimizer_setup.h"

#include <torch/nn/utils/clip_grad.h>
#include <torch/torch.h>

namespace tuneledger::train {

std::unique_ptr<torch::optim::AdamW> MakeAdamW(const std::vector<torch::Tensor>& parameters,
                                               double learning_rate, double weight_decay) {
  torch::optim::AdamWOptions options(learning_rate);
  options.betas(std::make_tuple(kAdamBeta1, kAdamBeta2)).eps(kAdamEps).weight_decay(weight_decay);
  return std::make_unique<torch::optim::AdamW>(parameters, options);
}

void SetLearningRate(torch::optim::AdamW& optimizer, double learning_rate) {
  for (auto& group : optimizer.param_groups()) {
    static_cast<torch::optim::AdamWOptions&>(group.options()).lr(learning_rate);
  }
}

double ClipGradNorm(const std::vector<torch::Tensor>& parameters, double max_norm) {
  if (max_norm > 0) return torch::nn::utils::clip_grad_norm_(parameters, max_norm);
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> norms;
  for (const auto& parameter : parameters) {
    if (parameter.grad().defined()) norms.push_back(parameter.grad().norm(2));
  }
  if (norms.empty()) return 0.0;
  return torch::stack(norms).norm(2).item<double>();
}

}  // namespace tuneledger::train
