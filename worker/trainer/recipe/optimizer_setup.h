// The optimizer side of a step: AdamW over the trainable parameters, the learning rate of the
// current step, global-norm gradient clipping.
//
// Thread safety: none; owned by the training thread.
#ifndef TUNELEDGER_WORKER_TRAINER_RECIPE_OPTIMIZER_SETUP_H_
#define TUNELEDGER_WORKER_TRAINER_RECIPE_OPTIMIZER_SETUP_H_

#include <torch/optim/adamw.h>
#include <torch/types.h>

#include <memory>
#include <vector>

namespace tuneledger::train {

inline constexpr double kAdamBeta1 = 0.9;
inline constexpr double kAdamBeta2 = 0.999;
inline constexpr double kAdamEps = 1e-8;

// AdamW (decoupled weight decay) with betas (0.9, 0.999), eps 1e-8 and the given decay (LibTorch
// defaults to 0.01; the spec's default is 0).
std::unique_ptr<torch::optim::AdamW> MakeAdamW(const std::vector<torch::Tensor>& parameters,
                                               double learning_rate, double weight_decay);

void SetLearningRate(torch::optim::AdamW& optimizer, double learning_rate);

// Scales the gradients so their global L2 norm is at most max_norm (0 = no clipping) and
// returns the norm before clipping (inf/NaN when some gradient is not finite).
double ClipGradNorm(const std::vector<torch::Tensor>& parameters, double max_norm);

}  // namespace tuneledger::train

#endif  // TUNELEDGER_WORKER_TRAINER_RECIPE_OPTIMIZER_SETUP_H_
