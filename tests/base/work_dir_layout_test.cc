#include "base/work_dir_layout.h"

#include <cstdint>
#include <string>

#include "gtest/gtest.h"

namespace tuneledger {
namespace {

TEST(WorkDirLayoutTest, DrawsTheDocumentedTree) {
  const std::string attempt = layout::AttemptDir("/w", "42", 3);
  EXPECT_EQ(layout::JobDir("/w", "42"), "/w/jobs/42");
  EXPECT_EQ(attempt, "/w/jobs/42/attempt-3");
  EXPECT_EQ(layout::SpecPath(attempt), "/w/jobs/42/attempt-3/spec.json");
  EXPECT_EQ(layout::TrainLogPath(attempt), "/w/jobs/42/attempt-3/train.log");
  EXPECT_EQ(layout::CheckpointsDir(attempt), "/w/jobs/42/attempt-3/checkpoints");
  EXPECT_EQ(layout::CheckpointDir(attempt, 50), "/w/jobs/42/attempt-3/checkpoints/step-50");
  EXPECT_EQ(layout::AdapterDir(attempt), "/w/jobs/42/attempt-3/adapter");
  EXPECT_EQ(layout::LocalWorkerLogPath("/w", "local-0"), "/w/local-workers/local-0/agent.log");
}

TEST(WorkDirLayoutTest, OnlySafeNamesBecomeFolders) {
  for (const char* ok : {"1", "42", "job-7", "a.b_c", "X"}) {
    EXPECT_TRUE(layout::IsSafePathComponent(ok)) << ok;
  }
  for (const char* bad : {"", ".", "..", "../x", "a/b", "a b", "x\n", "caf\xc3\xa9"}) {
    EXPECT_FALSE(layout::IsSafePathComponent(bad)) << bad;
  }
  EXPECT_FALSE(layout::IsSafePathComponent(std::string(129, 'a')));
}

TEST(WorkDirLayoutTest, CheckpointFolderNamesRoundTrip) {
  EXPECT_EQ(layout::CheckpointDirName(7), "step-7");
  EXPECT_EQ(layout::CheckpointTmpDirName(7), "step-7.tmp");
  EXPECT_EQ(layout::MergedModelDir("/a"), "/a/merged");
  for (int64_t step : {int64_t{0}, int64_t{1}, int64_t{120}, int64_t{999999999999999999}}) {
    EXPECT_EQ(layout::StepOfCheckpointDirName(layout::CheckpointDirName(step)), step);
  }
  for (const char* not_a_checkpoint :
       {"step-", "step-7.tmp", "step-x", "step--1", "Step-7", "step-1234567890123456789", "7"}) {
    EXPECT_FALSE(layout::StepOfCheckpointDirName(not_a_checkpoint).has_value()) << not_a_checkpoint;
  }
}

}  // namespace
}  // namespace tuneledger
