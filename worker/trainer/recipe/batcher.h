// Batches of tokenized examples: per-epoch shuffling from the seed, length grouping so batches
// carry little padding, right padding with label -100.
//
// Shape legend: B batch (<= batch_size), T the longest example in the batch.
//
// Epoch order: LengthGroupedEpochOrder (epoch_order.h), a pure function of the lengths, seed and
// epoch, so a checkpoint only needs the position. The last batch of an epoch may be smaller than
// batch_size. A data position is (epoch, number
// of batches of that epoch already taken); Next() rolls over into the next epoch.
//
// Thread safety: none; one training thread owns a batcher.
#ifndef TUNELEDGER_WORKER_TRAINER_RECIPE_BATCHER_H_
#define TUNELEDGER_WORKER_TRAINER_RECIPE_BATCHER_H_

#include <torch/types.h>

#include <cstdint>
#include <vector>

#include "lm/data/epoch_order.h"
#include "lm/data/jsonl_dataset.h"

namespace tuneledger::train {

struct Batch {
  torch::Tensor input_ids;  // [B,T] int64, right-padded with the pad id
  torch::Tensor labels;     // [B,T] int64, kIgnoreLabel on pads and untrained tokens
  int64_t tokens = 0;       // real (non-pad) tokens: what the model actually processed
  int64_t targets = 0;      // labels that carry loss after the causal shift
};

struct DataPosition {
  int64_t epoch = 0;
  int64_t batch_in_epoch = 0;  // batches of this epoch already consumed
};

// Pads `indices` of `examples` into one batch.
Batch CollateBatch(const std::vector<TokenizedExample>& examples,
                   const std::vector<int64_t>& indices, int64_t pad_id);

class LengthGroupedBatcher {
 public:
  // `examples` must outlive the batcher and be non-empty; batch_size >= 1.
  LengthGroupedBatcher(const std::vector<TokenizedExample>& examples, int batch_size, int64_t seed,
                       int64_t pad_id);

  int64_t batches_per_epoch() const { return batches_per_epoch_; }

  // The batches of `epoch`, each a list of example indices.
  std::vector<std::vector<int64_t>> EpochOrder(int64_t epoch) const;

  // The next batch; advances the position.
  Batch Next();

  const DataPosition& position() const { return position_; }
  // Continue from a checkpointed position (batch_in_epoch <= batches_per_epoch).
  void Seek(const DataPosition& position);

 private:
  const std::vector<TokenizedExample>& examples_;
  std::vector<int64_t> lengths_;  // token count of each example
  int batch_size_;
  int64_t seed_;
  int64_t pad_id_;
  int64_t batches_per_epoch_;
  DataPosition position_;
  int64_t cached_epoch_ = -1;
  std::vector<std::vector<int64_t>> cached_order_;
};

// Fixed, unshuffled, length-sorted batches for evaluation (same every time).
std::vector<Batch> MakeEvalBatches(const std::vector<TokenizedExample>& examples, int batch_size,
                                   int64_t pad_id);

}  // namespace tuneledger::train

#endif  // TUNELEDGER_WORKER_TRAINER_RECIPE_BATCHER_H_
