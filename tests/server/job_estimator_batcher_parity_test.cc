// The estimator restates the trainer's step rule without LibTorch (server/core/job_estimator.h);
// here it meets the trainer's own LengthGroupedBatcher (worker/trainer/recipe/batcher.h) and the
// micro-batches of train_loop.cc's NextBatch.
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "lm/data/byte_tokenizer.h"
#include "lm/data/jsonl_dataset.h"
#include "server/core/job_estimator.h"
#include "server/core/job_spec_validator.h"
#include "tests/testing/temp_dir.h"
#include "worker/trainer/recipe/batcher.h"

namespace tuneledger {
namespace {

const std::string kTinyModel = absl::StrCat(TUNELEDGER_SOURCE_DIR, "/models/tiny-llama");

// What the trainer trains in `total_steps` steps: NextBatch's micro-batches (grad_accum of them,
// fewer at an epoch's end), each Batch::tokens counted.
int64_t TrainerTokens(const std::vector<train::TokenizedExample>& examples, int batch_size,
                      int grad_accum, int64_t seed, int64_t total_steps) {
  train::LengthGroupedBatcher batcher(examples, batch_size, seed, 0);
  int64_t tokens = 0;
  for (int64_t step = 0; step < total_steps; ++step) {
    for (int i = 0; i < grad_accum; ++i) {
      tokens += batcher.Next().tokens;
      if (batcher.position().batch_in_epoch == batcher.batches_per_epoch()) break;
    }
  }
  return tokens;
}

TEST(JobEstimatorBatcherParityTest, TokensToTrainAreWhatTheTrainersBatchesCarry) {
  testing::TempDir dir;
  std::mt19937 rng(5);
  std::string data;
  for (int i = 0; i < 41; ++i) {
    data += absl::StrCat(R"({"prompt": ")", std::string(rng() % 20, 'p'), R"(", "completion": ")",
                         std::string(1 + rng() % 30, 'c'), "\"}\n");
  }
  const std::string train = dir.Write("train.jsonl", data);
  const std::unique_ptr<train::ByteTokenizer> tokenizer =
      train::ByteTokenizer::FromModelDir(kTinyModel);
  const train::TokenizedDataset dataset =
      train::LoadJsonlDataset(train, *tokenizer, train::DatasetOptions{32, 259});
  ASSERT_GT(dataset.truncated, 0);
  struct Case {
    int batch_size;
    int grad_accum;
    int epochs;
    int max_steps;
  };
  for (const Case& c : {Case{4, 1, 0, 7}, Case{4, 3, 0, 9}, Case{5, 2, 0, 13}, Case{3, 4, 0, 1},
                        Case{8, 1, 2, 0}, Case{1, 7, 0, 30}, Case{41, 1, 0, 3}}) {
    SCOPED_TRACE(absl::StrCat("batch ", c.batch_size, " x ", c.grad_accum, ", epochs ", c.epochs,
                              ", max_steps ", c.max_steps));
    v1::JobSpec spec;
    spec.set_model_path(kTinyModel);
    spec.set_train_path(train);
    spec.mutable_training()->set_batch_size(c.batch_size);
    spec.mutable_training()->set_grad_accum_steps(c.grad_accum);
    spec.mutable_training()->set_epochs(c.epochs);
    spec.mutable_training()->set_max_steps(c.max_steps);
    spec.mutable_training()->set_seq_len(32);
    spec.mutable_training()->set_seed(3);
    const v1::JobEstimate estimate =
        BuildJobEstimate(WithDefaults(spec), {}, {}, absl::UnixEpoch());
    ASSERT_TRUE(estimate.tokens_counted()) << estimate.tokens_basis();
    EXPECT_EQ(estimate.examples(), static_cast<int64_t>(dataset.examples.size()));
    EXPECT_EQ(estimate.tokens_to_train(), TrainerTokens(dataset.examples, c.batch_size,
                                                        c.grad_accum, 3, estimate.total_steps()));
  }
}

}  // namespace
}  // namespace tuneledger
