// Batching: per-epoch shuffling from the seed, each example once per epoch, little padding,
// right padding with label -100, positions that can be resumed.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <set>

#include "worker/trainer/recipe/batcher.h"

namespace tuneledger::train {
namespace {

std::vector<TokenizedExample> Examples(int count) {
  std::vector<TokenizedExample> examples;
  for (int i = 0; i < count; ++i) {
    TokenizedExample example;
    const int length = 2 + (i * 37) % 61;  // lengths 2..62, mixed
    for (int t = 0; t < length; ++t) example.input_ids.push_back(3 + (i + t) % 200);
    example.labels = example.input_ids;
    examples.push_back(example);
  }
  return examples;
}

std::vector<int64_t> Flatten(const std::vector<std::vector<int64_t>>& batches) {
  std::vector<int64_t> all;
  for (const auto& batch : batches) all.insert(all.end(), batch.begin(), batch.end());
  return all;
}

TEST(BatcherTest, EpochOrderIsDeterministicPerSeedAndEpoch) {
  const auto examples = Examples(200);
  LengthGroupedBatcher a(examples, 8, /*seed=*/5, 0);
  LengthGroupedBatcher b(examples, 8, /*seed=*/5, 0);
  LengthGroupedBatcher other_seed(examples, 8, /*seed=*/6, 0);
  EXPECT_EQ(a.EpochOrder(0), b.EpochOrder(0));
  EXPECT_EQ(a.EpochOrder(3), b.EpochOrder(3));
  EXPECT_NE(a.EpochOrder(0), a.EpochOrder(1)) << "each epoch is shuffled anew";
  EXPECT_NE(a.EpochOrder(0), other_seed.EpochOrder(0));
}

TEST(BatcherTest, EveryExampleOncePerEpoch) {
  const auto examples = Examples(203);
  LengthGroupedBatcher batcher(examples, 8, 1, 0);
  EXPECT_EQ(batcher.batches_per_epoch(), 26);
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    const auto order = batcher.EpochOrder(epoch);
    EXPECT_EQ(static_cast<int64_t>(order.size()), batcher.batches_per_epoch());
    std::vector<int64_t> all = Flatten(order);
    std::sort(all.begin(), all.end());
    std::vector<int64_t> expected(203);
    std::iota(expected.begin(), expected.end(), 0);
    EXPECT_EQ(all, expected);
  }
}

TEST(BatcherTest, LengthGroupingCutsPadding) {
  const auto examples = Examples(512);
  LengthGroupedBatcher batcher(examples, 8, 3, 0);
  int64_t padded = 0;
  int64_t real = 0;
  for (int64_t i = 0; i < batcher.batches_per_epoch(); ++i) {
    const Batch batch = batcher.Next();
    padded += batch.input_ids.numel();
    real += batch.tokens;
  }
  // Random batches of lengths uniform in 2..62 would waste ~45%; grouping keeps it small.
  const double waste = 1.0 - static_cast<double>(real) / static_cast<double>(padded);
  EXPECT_LT(waste, 0.10) << "padding fraction " << waste;
}

TEST(BatcherTest, RightPaddingWithIgnoredLabels) {
  std::vector<TokenizedExample> examples(2);
  examples[0].input_ids = {1, 10, 11, 12};
  examples[0].labels = {-100, 10, 11, 12};
  examples[1].input_ids = {1, 20};
  examples[1].labels = {1, 20};
  const Batch batch = CollateBatch(examples, {0, 1}, /*pad_id=*/0);
  ASSERT_EQ(batch.input_ids.sizes(), (std::vector<int64_t>{2, 4}));
  const std::vector<int64_t> ids(batch.input_ids.data_ptr<int64_t>(),
                                 batch.input_ids.data_ptr<int64_t>() + 8);
  const std::vector<int64_t> labels(batch.labels.data_ptr<int64_t>(),
                                    batch.labels.data_ptr<int64_t>() + 8);
  EXPECT_EQ(ids, (std::vector<int64_t>{1, 10, 11, 12, 1, 20, 0, 0}));
  EXPECT_EQ(labels, (std::vector<int64_t>{-100, 10, 11, 12, 1, 20, -100, -100}));
  EXPECT_EQ(batch.tokens, 6);
  EXPECT_EQ(batch.targets, 4);  // 10 11 12 and 20 (position 0 is never a target)
}

TEST(BatcherTest, SeekContinuesTheSameStream) {
  const auto examples = Examples(50);
  LengthGroupedBatcher straight(examples, 4, 9, 0);
  std::vector<torch::Tensor> expected;
  for (int i = 0; i < 30; ++i) expected.push_back(straight.Next().input_ids);  // crosses epochs

  LengthGroupedBatcher first(examples, 4, 9, 0);
  for (int i = 0; i < 17; ++i) first.Next();
  LengthGroupedBatcher resumed(examples, 4, 9, 0);
  resumed.Seek(first.position());
  for (int i = 17; i < 30; ++i) {
    EXPECT_TRUE(torch::equal(resumed.Next().input_ids, expected[i])) << "batch " << i;
  }
  EXPECT_THROW(resumed.Seek({0, 999}), std::runtime_error);
}

}  // namespace
}  // namespace tuneledger::train
