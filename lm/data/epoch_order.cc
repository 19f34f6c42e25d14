#include "lm/data/epoch_order.h"

#include <algorithm>
#include <numeric>

#include "base/split_mix64.h"

namespace tuneledger::train {
namespace {

template <typename T>
void Shuffle(std::vector<T>& items, SplitMix64& rng) {
  for (size_t i = items.size(); i > 1; --i) {
    std::swap(items[i - 1], items[rng.Below(i)]);
  }
}

}  // namespace

std::vector<std::vector<int64_t>> LengthGroupedEpochOrder(const std::vector<int64_t>& lengths,
                                                          int batch_size, int64_t seed,
                                                          int64_t epoch) {
  SplitMix64 rng(static_cast<uint64_t>(seed) * 0x100000001B3ULL ^
                 (static_cast<uint64_t>(epoch) + 0x5DEECE66DULL));
  std::vector<int64_t> order(lengths.size());
  std::iota(order.begin(), order.end(), 0);
  Shuffle(order, rng);

  const size_t window = static_cast<size_t>(batch_size) * kGroupWindow;
  std::vector<std::vector<int64_t>> batches;
  for (size_t begin = 0; begin < order.size(); begin += window) {
    const size_t end = std::min(order.size(), begin + window);
    std::stable_sort(order.begin() + begin, order.begin() + end,
                     [&](int64_t a, int64_t b) { return lengths[a] > lengths[b]; });
    for (size_t start = begin; start < end; start += batch_size) {
      const size_t stop = std::min(end, start + batch_size);
      batches.emplace_back(order.begin() + start, order.begin() + stop);
    }
  }
  Shuffle(batches, rng);
  return batches;
}

}  // namespace tuneledger::train
