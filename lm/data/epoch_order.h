// The order in which one epoch visits the training examples, without LibTorch: the trainer's
// batcher (batcher.h) trains in this order, and the server's estimator (server/core/
// job_estimator.h) counts the same batches, so both must call this one function.
//
// Epoch order (a pure function of the examples' lengths, batch size, seed and epoch):
//   1. shuffle all example indices (Fisher-Yates driven by SplitMix64(seed, epoch));
//   2. cut the shuffled list into windows of kGroupWindow batches, sort each window by length
//      (longest first, stable), and cut it into batches: neighbours in a batch have similar
//      lengths, so padding is small, yet the window keeps the order random;
//   3. shuffle the order of the batches with the same generator.
// The last batch of an epoch may be smaller than batch_size.
//
// Thread safety: a pure function.
#ifndef TUNELEDGER_LM_DATA_EPOCH_ORDER_H_
#define TUNELEDGER_LM_DATA_EPOCH_ORDER_H_

#include <cstdint>
#include <vector>

namespace tuneledger::train {

inline constexpr int64_t kGroupWindow = 16;  // batches per length-sorted window

// lengths[i]: the token count of example i; batch_size >= 1. Each batch is a list of indices.
std::vector<std::vector<int64_t>> LengthGroupedEpochOrder(const std::vector<int64_t>& lengths,
                                                          int batch_size, int64_t seed,
                                                          int64_t epoch);

}  // namespace tuneledger::train

#endif  // TUNELEDGER_LM_DATA_EPOCH_ORDER_H_
