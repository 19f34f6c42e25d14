#include "worker/trainer/recipe/batcher.h"

#include <algorithm>
#include <numeric>

#include "lm/trainer_error.h"

namespace tuneledger::train {

Batch CollateBatch(const std::vector<TokenizedExample>& examples,
                   const std::vector<int64_t>& indices, int64_t pad_id) {
  const int64_t batch = static_cast<int64_t>(indices.size());
  int64_t longest = 0;
  for (int64_t index : indices) {
    longest = std::max<int64_t>(longest, examples[index].input_ids.size());
  }
  Batch result;
  result.input_ids = torch::full({batch, longest}, pad_id, torch::kInt64);     // [B,T]
  result.labels = torch::full({batch, longest}, kIgnoreLabel, torch::kInt64);  // [B,T]
  auto ids = result.input_ids.accessor<int64_t, 2>();
  auto labels = result.labels.accessor<int64_t, 2>();
  for (int64_t b = 0; b < batch; ++b) {
    const TokenizedExample& example = examples[indices[b]];
    const int64_t length = static_cast<int64_t>(example.input_ids.size());
    for (int64_t t = 0; t < length; ++t) {
      ids[b][t] = example.input_ids[t];
      labels[b][t] = example.labels[t];
      if (t > 0 && example.labels[t] != kIgnoreLabel) ++result.targets;
    }
    result.tokens += length;
  }
  return result;
}

LengthGroupedBatcher::LengthGroupedBatcher(const std::vector<TokenizedExample>& examples,
                                           int batch_size, int64_t seed, int64_t pad_id)
    : examples_(examples), batch_size_(batch_size), seed_(seed), pad_id_(pad_id) {
  if (examples_.empty()) throw TrainError("no training examples");
  if (batch_size_ < 1) throw TrainError("batch_size: must be >= 1");
  for (const TokenizedExample& example : examples_) {
    lengths_.push_back(static_cast<int64_t>(example.input_ids.size()));
  }
  const int64_t n = static_cast<int64_t>(examples_.size());
  batches_per_epoch_ = (n + batch_size_ - 1) / batch_size_;
}

std::vector<std::vector<int64_t>> LengthGroupedBatcher::EpochOrder(int64_t epoch) const {
  return LengthGroupedEpochOrder(lengths_, batch_size_, seed_, epoch);
}

Batch LengthGroupedBatcher::Next() {
  if (position_.batch_in_epoch >= batches_per_epoch_) {
    ++position_.epoch;
    position_.batch_in_epoch = 0;
  }
  if (cached_epoch_ != position_.epoch) {
    cached_order_ = EpochOrder(position_.epoch);
    cached_epoch_ = position_.epoch;
  }
  const auto& indices = cached_order_[position_.batch_in_epoch];
  ++position_.batch_in_epoch;
  return CollateBatch(examples_, indices, pad_id_);
}

void LengthGroupedBatcher::Seek(const DataPosition& position) {
  if (position.epoch < 0 || position.batch_in_epoch < 0 ||
      position.batch_in_epoch > batches_per_epoch_) {
    throw TrainError("data position (epoch " + std::to_string(position.epoch) + ", batch " +
                     std::to_string(position.batch_in_epoch) + ") does not fit this dataset (" +
                     std::to_string(batches_per_epoch_) + " batches per epoch)");
  }
  position_ = position;
}

std::vector<Batch> MakeEvalBatches(const std::vector<TokenizedExample>& examples, int batch_size,
                                   int64_t pad_id) {
  std::vector<int64_t> order(examples.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return examples[a].input_ids.size() > examples[b].input_ids.size();
  });
  std::vector<Batch> batches;
  for (size_t start = 0; start < order.size(); start += batch_size) {
    const size_t stop = std::min(order.size(), start + batch_size);
    batches.push_back(CollateBatch(
        examples, std::vector<int64_t>(order.begin() + start, order.begin() + stop), pad_id));
  }
  return batches;
}

}  // namespace tuneledger::train
