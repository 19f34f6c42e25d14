// The training objective: next-token cross-entropy over shifted logits.
//
// Shape legend: B batch, T tokens, V vocab.
//
//   loss_sum = sum over b, t < T-1 with labels[b, t+1] != -100 of
//              -log softmax(logits[b, t])[labels[b, t+1]]
//
// Returns the SUM, not the mean: the recipe divides by the number of targets of the whole
// optimizer step (all micro-batches together), so gradient accumulation weights every target
// token equally however the tokens fall into micro-batches.
//
// Thread safety: pure function.
#ifndef TUNELEDGER_WORKER_TRAINER_CAUSAL_LM_LOSS_H_
#define TUNELEDGER_WORKER_TRAINER_CAUSAL_LM_LOSS_H_

#include <torch/types.h>

namespace tuneledger::train {

// logits [B,T,V] float, labels [B,T] int64 (-100 = ignore) -> scalar fp32 sum.
torch::Tensor CausalLmLossSum(const torch::Tensor& logits, const torch::Tensor& labels);

}  // namespace tuneledger::train

#endif  // TUNELEDGER_WORKER_TRAINER_CAUSAL_LM_LOSS_H_
