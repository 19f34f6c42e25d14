// The training objective: next-token cross-entropy over shifted positions.
//
// Shape legend: B batch, T tokens, D hidden, V vocab, N positions with a target.
//
//   loss_sum = sum over b, t < T-1 with labels[b, t+1] != -100 of
//              -log softmax(logits[b, t])[labels[b, t+1]],   logits = hidden W^T
//
// Returns the SUM, not the mean: the recipe divides by the number of targets of the whole
// optimizer step (all micro-batches together), so gradient accumulation weights every target
// token equally however the tokens fall into micro-batches.
//
// Two implementations of one formula:
//   CausalLmLossSum            the fast path: from the final hidden states and the lm_head
//                              weight, only at the N positions that have a target, in chunks of
//                              rows; logits exist for one chunk at a time (never [B,T,V]), in
//                              fp32, and backward recomputes them chunk by chunk.
//   CausalLmLossSumFromLogits  the plain reference on full logits [B,T,V]
// tests/trainer/recipe_loss_test.cc checks they agree (loss and gradients, fp32).
//
// Thread safety: pure functions.
#ifndef TUNELEDGER_WORKER_TRAINER_RECIPE_CAUSAL_LM_LOSS_H_
#define TUNELEDGER_WORKER_TRAINER_RECIPE_CAUSAL_LM_LOSS_H_

#include <torch/types.h>

#include <cstdint>

namespace tuneledger::train {

// Default bound on one chunk's logits: 2^24 fp32 values (64 MiB).
inline constexpr int64_t kLossChunkElements = int64_t{1} << 24;

// hidden [B,T,D] fp32, lm_head_weight [V,D] (base dtype; gradients flow to it only when it
// requires them, as in full training), labels [B,T] int64 (-100 = ignore) -> scalar fp32 sum.
torch::Tensor CausalLmLossSum(const torch::Tensor& hidden, const torch::Tensor& lm_head_weight,
                              const torch::Tensor& labels,
                              int64_t chunk_elements = kLossChunkElements);

// logits [B,T,V] float, labels [B,T] int64 (-100 = ignore) -> scalar fp32 sum.
torch::Tensor CausalLmLossSumFromLogits(const torch::Tensor& logits, const torch::Tensor& labels);

}  // namespace tuneledger::train

#endif  // TUNELEDGER_WORKER_TRAINER_RECIPE_CAUSAL_LM_LOSS_H_
