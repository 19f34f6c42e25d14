#include "worker/agent/hardware_probe.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace tuneledger::worker {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::tuneledger::testing::StatusIs;

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
