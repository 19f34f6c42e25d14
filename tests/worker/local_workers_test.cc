// LocalWorkers (`tuneledger-server --local-workers N`): N real tuneledger-worker agents against
// a scripted WorkerService, restarted when they die, stopped (gracefully) on Stop().
#include "server/local_workers.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "base/work_dir_layout.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"
#include "tests/worker/fake_worker_service.h"

namespace tuneledger {
namespace {

using ::testing::HasSubstr;
using ::tuneledger::testing::FakeWorkerServer;
using ::tuneledger::testing::FakeWorkerService;
using ::tuneledger::testing::StatusIs;
using ::tuneledger::testing::TempDir;
using ::tuneledger::v1::FinishAttemptRequest;
using ::tuneledger::v1::TrainerUpdate;

constexpr absl::Duration kTimeout = absl::Seconds(30);

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

bool ProcessGone(pid_t pid) { return kill(pid, 0) == -1 && errno == ESRCH; }

class LocalWorkersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pids_file_ = root_.File("pids");
    // The real agent, with the fake trainer; the wrapper records each agent's pid (exec keeps
    // it).
    wrapper_ = root_.File("worker.sh");
    std::ofstream(wrapper_) << "#!/bin/sh\necho $$ >> " << pids_file_ << "\nexec "
                            << TUNELEDGER_BIN_DIR << "/tuneledger-worker \"$@\" --trainer "
                            << TUNELEDGER_SOURCE_DIR << "/tests/worker/testdata/fake_trainer.sh\n";
    std::filesystem::permissions(wrapper_, std::filesystem::perms::owner_all);
    server_.service().set_intervals(0.2, 0.2);
  }

  LocalWorkersOptions Options(int count) {
    LocalWorkersOptions options;
    options.count = count;
    options.server_address = server_.address();
    options.work_dir = root_.File("work");
    options.price_per_gpu_hour = 1.5;
    options.spot = true;
    options.worker_binary = wrapper_;
    options.data_roots = {"/"};
    options.worker_token = "local-workers-test-token";
    return options;
  }

  std::vector<pid_t> Pids() {
    std::vector<pid_t> pids;
    for (absl::string_view line : absl::StrSplit(ReadFile(pids_file_), '\n', absl::SkipEmpty())) {
      int pid = 0;
      if (absl::SimpleAtoi(line, &pid)) pids.push_back(pid);
    }
    return pids;
  }

  FakeWorkerService& fake() { return server_.service(); }

  FakeWorkerServer server_;
  TempDir root_{"local_workers"};
  std::string pids_file_;
  std::string wrapper_;
};

TEST_F(LocalWorkersTest, StartsNamedWorkersSharingOneWorkDir) {
  LocalWorkers workers(Options(2));
  ASSERT_OK(workers.Start());
  ASSERT_TRUE(
      fake().WaitFor([](const auto& log) { return log.registrations.size() >= 2; }, kTimeout));
  std::set<std::string> names;
  for (const auto& registration : fake().Snapshot().registrations) {
    names.insert(registration.info().labels().at("name"));
    EXPECT_DOUBLE_EQ(registration.info().price_per_gpu_hour(), 1.5);
    EXPECT_TRUE(registration.info().spot());
  }
  EXPECT_EQ(names, (std::set<std::string>{"local-0", "local-1"}));
  workers.Stop(absl::Seconds(10));
  // Each has its own log folder (read once stopped: the lines are all written by then).
  for (const char* name : {"local-0", "local-1"}) {
    EXPECT_THAT(ReadFile(layout::LocalWorkerLogPath(root_.File("work"), name)),
                HasSubstr("registered with"));
  }
}

TEST_F(LocalWorkersTest, RestartsAWorkerThatDies) {
  LocalWorkers workers(Options(1));
  ASSERT_OK(workers.Start());
  ASSERT_TRUE(fake().WaitFor([](const auto& log) { return !log.registrations.empty(); }, kTimeout));
  std::vector<pid_t> first = Pids();
  ASSERT_EQ(first.size(), 1u);
  kill(first[0], SIGKILL);
  ASSERT_TRUE(
      fake().WaitFor([](const auto& log) { return log.registrations.size() >= 2; }, kTimeout))
      << "the killed worker was not restarted";
  std::vector<pid_t> now = Pids();
  ASSERT_EQ(now.size(), 2u);
  EXPECT_NE(now[1], now[0]);
  workers.Stop(absl::Seconds(10));
  EXPECT_TRUE(ProcessGone(now[1]));
}

TEST_F(LocalWorkersTest, StopPreemptsRunningAttemptsAndLeavesNoProcess) {
  LocalWorkers workers(Options(2));
  ASSERT_OK(workers.Start());
  v1::Lease lease;
  lease.set_job_id("5");
  lease.set_attempt(1);
  lease.mutable_spec()->set_name("preemptible");
  fake().QueueLease(lease);
  ASSERT_TRUE(fake().WaitFor(
      [](const auto& log) {
        for (const auto& report : log.reports) {
          if (report.update().kind() == TrainerUpdate::PROGRESS) return true;
        }
        return false;
      },
      kTimeout));
  absl::Time stop_time = absl::Now();
  workers.Stop(absl::Seconds(20));
  EXPECT_LT(absl::Now() - stop_time, absl::Seconds(20)) << "a worker needed SIGKILL";

  FakeWorkerService::Log log = fake().Snapshot();
  ASSERT_EQ(log.finishes.size(), 1u);
  EXPECT_EQ(log.finishes[0].outcome(), FinishAttemptRequest::PREEMPTED);
  EXPECT_THAT(log.finishes[0].last_checkpoint(), HasSubstr("/jobs/5/attempt-1/checkpoints/step-7"));
  for (pid_t pid : Pids()) EXPECT_TRUE(ProcessGone(pid)) << "worker " << pid << " left behind";
}

TEST_F(LocalWorkersTest, ZeroWorkersIsANoOp) {
  LocalWorkers workers(Options(0));
  EXPECT_OK(workers.Start());
  workers.Stop();
  EXPECT_TRUE(Pids().empty());
}

TEST_F(LocalWorkersTest, BadOptionsAreRefused) {
  LocalWorkersOptions options = Options(1);
  options.worker_binary = root_.File("missing-worker");
  EXPECT_THAT(LocalWorkers(options).Start(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("missing-worker")));
  options = Options(-1);
  EXPECT_THAT(LocalWorkers(options).Start(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--local-workers")));
  options = Options(1);
  options.work_dir = "";
  EXPECT_THAT(LocalWorkers(options).Start(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--work-dir")));
}

}  // namespace
}  // namespace tuneledger
