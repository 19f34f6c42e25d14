#include "worker/trainer/causal_lm_loss.h"

#include <torch/nn/functional/loss.h>

#include "worker/trainer/jsonl_dataset.h"

namespace tuneledger::train {

torch::Tensor CausalLmLossSum(const torch::Tensor& logits, const torch::Tensor& labels) {
  namespace F = torch::nn::functional;
  const int64_t vocab = logits.size(-1);
  torch::Tensor predictions = logits.slice(/*dim=*/1, 0, -1).reshape({-1, vocab});  // [B*(T-1),V]
  torch::Tensor targets = labels.slice(/*dim=*/1, 1).reshape({-1});                 // [B*(T-1)]
  return F::cross_entropy(
      predictions.to(torch::kFloat32), targets,
      F::CrossEntropyFuncOptions().ignore_index(kIgnoreLabel).reduction(torch::kSum));
}

}  // namespace tuneledger::train
