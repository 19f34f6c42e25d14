#include "worker/agent/work_dir_layout.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "worker/agent/hardware_probe.h"

namespace tuneledger::worker {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::tuneledger::testing::StatusIs;

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

TEST(ParseGpuListTest, AcceptsDistinctIndices) {
  absl::StatusOr<std::vector<int>> gpus = ParseGpuList("0,1, 3");
  ASSERT_OK(gpus);
  EXPECT_THAT(*gpus, ElementsAre(0, 1, 3));
}

TEST(ParseGpuListTest, RejectsBadEntriesNamingThem) {
  EXPECT_THAT(ParseGpuList(""), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"\"")));
  EXPECT_THAT(ParseGpuList("0,-1"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"-1\"")));
  EXPECT_THAT(ParseGpuList("gpu0"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"gpu0\"")));
  EXPECT_THAT(ParseGpuList("1,1"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("GPU 1 listed twice")));
}

TEST(ProbeHardwareTest, CpuAgentIsOneCpuGpu) {
  HardwareInfo info = ProbeHardware({});
  EXPECT_EQ(info.accelerator, "cpu");
  EXPECT_EQ(info.gpus, 1);
  EXPECT_FALSE(info.hostname.empty());
  EXPECT_GT(info.memory_bytes, 0);
}

}  // namespace
}  // namespace tuneledger::worker
