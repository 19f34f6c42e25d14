// The real tuneledger-worker binary against a scripted in-process WorkerService and a fake
// trainer script (tests/worker/testdata/fake_trainer.sh): registration, progress relay with
// cost, cost-only reports, cancel (stream and heartbeat), SIGKILL after the grace period,
// preemption by SIGTERM, trainer failures and crashes, re-registration.
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "base/child_process.h"
#include "base/work_dir_layout.h"
#include "base/worker_token_env.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"
#include "tests/worker/fake_worker_service.h"

namespace tuneledger {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::tuneledger::testing::FakeWorkerServer;
using ::tuneledger::testing::FakeWorkerService;
using ::tuneledger::testing::TempDir;
using ::tuneledger::v1::FinishAttemptRequest;
using ::tuneledger::v1::HeartbeatRequest;
using ::tuneledger::v1::Lease;
using ::tuneledger::v1::LeaseJobRequest;
using ::tuneledger::v1::ProgressReport;
using ::tuneledger::v1::TrainerUpdate;
namespace layout = ::tuneledger::layout;

constexpr absl::Duration kTimeout = absl::Seconds(30);

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

bool ProcessGone(pid_t pid) { return kill(pid, 0) == -1 && errno == ESRCH; }

class WorkerAgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    work_dir_ = root_.File("work");
    agent_log_ = root_.File("agent.log");
    server_.service().set_intervals(/*heartbeat_seconds=*/0.2, /*report_seconds=*/0.2);
  }

  void TearDown() override {
    if (worker_ != nullptr) worker_->Terminate(absl::Seconds(10));
    if (HasFailure()) std::cerr << "---- agent log ----\n" << ReadFile(agent_log_);
  }

  void StartWorker(std::vector<std::string> extra_args = {}) {
    ChildProcessOptions options;
    options.argv = {std::string(TUNELEDGER_BIN_DIR) + "/tuneledger-worker",
                    "--server",
                    server_.address(),
                    "--work-dir",
                    work_dir_,
                    "--price-per-gpu-hour",
                    "3.6",
                    "--data-root",
                    data_root_,
                    "--trainer",
                    std::string(TUNELEDGER_SOURCE_DIR) + "/tests/worker/testdata/fake_trainer.sh"};
    options.argv.insert(options.argv.end(), extra_args.begin(), extra_args.end());
    options.env[kWorkerTokenEnv] = "agent-test-token";
    options.stdout_mode = StdioMode::kFile;
    options.stdout_path = agent_log_;
    options.stderr_mode = StdioMode::kFile;
    options.stderr_path = agent_log_;
    options.parent_death_signal = SIGKILL;
    absl::StatusOr<std::unique_ptr<ChildProcess>> started = ChildProcess::Start(options);
    ASSERT_OK(started);
    worker_ = std::move(*started);
  }

  static Lease MakeLease(const std::string& job_id, int attempt, const std::string& mode) {
    Lease lease;
    lease.set_job_id(job_id);
    lease.set_attempt(attempt);
    lease.mutable_spec()->set_name(mode);
    lease.mutable_spec()->set_model_path("/models/tiny");
    lease.mutable_spec()->set_train_path("/data/train.jsonl");
    lease.mutable_spec()->mutable_training()->set_max_steps(3);
    return lease;
  }

  FakeWorkerService& fake() { return server_.service(); }

  // The FinishAttempt of job_id, waiting for it.
  FinishAttemptRequest WaitForFinish(const std::string& job_id) {
    FinishAttemptRequest found;
    bool ok = fake().WaitFor(
        [&](const FakeWorkerService::Log& log) {
          for (const auto& finish : log.finishes) {
            if (finish.job_id() == job_id) {
              found = finish;
              return true;
            }
          }
          return false;
        },
        kTimeout);
    EXPECT_TRUE(ok) << "no FinishAttempt for job " << job_id;
    return found;
  }

  bool WaitForReport(const std::string& job_id, TrainerUpdate::Kind kind) {
    return fake().WaitFor(
        [&](const FakeWorkerService::Log& log) {
          for (const auto& report : log.reports) {
            if (report.job_id() == job_id && report.update().kind() == kind) return true;
          }
          return false;
        },
        kTimeout);
  }

  std::vector<ProgressReport> ReportsOf(const std::string& job_id) {
    std::vector<ProgressReport> reports;
    for (const auto& report : fake().Snapshot().reports) {
      if (report.job_id() == job_id) reports.push_back(report);
    }
    return reports;
  }

  // pid, resume and cuda as the fake trainer recorded them.
  std::string TrainerRecord(const std::string& job_id, int attempt, const std::string& key) {
    std::string text =
        ReadFile(layout::AttemptDir(work_dir_, job_id, attempt) + "/fake-trainer.txt");
    for (absl::string_view line : absl::StrSplit(text, '\n')) {
      if (absl::ConsumePrefix(&line, key + "=")) return std::string(line);
    }
    return "<missing>";
  }

  pid_t TrainerPid(const std::string& job_id, int attempt) {
    int pid = 0;
    EXPECT_TRUE(absl::SimpleAtoi(TrainerRecord(job_id, attempt, "pid"), &pid));
    return pid;
  }

  FakeWorkerServer server_;
  TempDir root_{"worker_agent"};  // removed after TearDown
  std::string work_dir_;
  std::string data_root_ = "/";  // --data-root of StartWorker()
  std::string agent_log_;
  std::unique_ptr<ChildProcess> worker_;
};

TEST_F(WorkerAgentTest, RegistersAsCpuAgentWithItsPrice) {
  StartWorker({"--spot", "--on-demand-price-per-gpu-hour", "9.5", "--name", "test-1"});
  ASSERT_TRUE(fake().WaitFor([](const auto& log) { return !log.registrations.empty(); }, kTimeout));
  const FakeWorkerService::Log log = fake().Snapshot();
  const auto& info = log.registrations[0].info();
  EXPECT_FALSE(info.hostname().empty());
  EXPECT_EQ(info.accelerator(), "cpu");
  EXPECT_EQ(info.gpus(), 1);
  EXPECT_GT(info.memory_bytes(), 0);
  EXPECT_DOUBLE_EQ(info.price_per_gpu_hour(), 3.6);
  EXPECT_TRUE(info.spot());
  EXPECT_DOUBLE_EQ(info.on_demand_price_per_gpu_hour(), 9.5);
  EXPECT_EQ(info.labels().at("name"), "test-1");
  // Heartbeats follow, carrying the id the server gave.
  ASSERT_TRUE(fake().WaitFor([](const auto& log) { return log.heartbeats.size() >= 2; }, kTimeout));
  EXPECT_EQ(fake().Snapshot().heartbeats[0].worker_id(), "w1");
}

// Issue 10.1: every call carries the worker credential, heartbeats and polls the session
// token RegisterWorker issued, and reports and the finish the lease's own token.
TEST_F(WorkerAgentTest, EveryCallCarriesTheWorkerTokenAndTheIssuedSessionAndLeaseTokens) {
  StartWorker();
  Lease lease = MakeLease("8", 1, "succeed");
  lease.set_lease_token("lease-token-of-8");
  fake().QueueLease(lease);
  const FinishAttemptRequest finish = WaitForFinish("8");
  EXPECT_EQ(finish.lease_token(), "lease-token-of-8");
  ASSERT_TRUE(fake().WaitFor(
      [](const FakeWorkerService::Log& log) { return !log.heartbeats.empty(); }, kTimeout));
  const FakeWorkerService::Log log = fake().Snapshot();
  ASSERT_FALSE(log.authorizations.empty());
  for (const std::string& authorization : log.authorizations) {
    EXPECT_EQ(authorization, "Bearer agent-test-token");
  }
  for (const HeartbeatRequest& heartbeat : log.heartbeats) {
    EXPECT_EQ(heartbeat.session_token(), "session-" + heartbeat.worker_id());
  }
  for (const LeaseJobRequest& poll : log.lease_requests) {
    EXPECT_EQ(poll.session_token(), "session-" + poll.worker_id());
  }
  const std::vector<ProgressReport> reports = ReportsOf("8");
  ASSERT_FALSE(reports.empty());
  for (const ProgressReport& report : reports) EXPECT_EQ(report.lease_token(), "lease-token-of-8");
}

TEST_F(WorkerAgentTest, RunsTrainerAndRelaysProgressWithAccruedCost) {
  StartWorker();
  fake().QueueLease(MakeLease("7", 1, "succeed"));
  FinishAttemptRequest finish = WaitForFinish("7");
  const std::string attempt_dir = layout::AttemptDir(work_dir_, "7", 1);

  EXPECT_EQ(finish.outcome(), FinishAttemptRequest::SUCCEEDED) << finish.DebugString();
  EXPECT_EQ(finish.adapter_path(), layout::AdapterDir(attempt_dir));
  EXPECT_EQ(finish.last_checkpoint(), layout::CheckpointDir(attempt_dir, 2));
  EXPECT_EQ(finish.worker_id(), "w1");
  EXPECT_EQ(finish.attempt(), 1);
  EXPECT_EQ(finish.final_update().step(), 3);
  EXPECT_NEAR(finish.accrued_usd(), 3.6 * finish.lease_seconds() / 3600, 1e-12);

  // spec.json: the lease's spec with proto field names; train.log: the trainer's stderr.
  std::string spec = ReadFile(layout::SpecPath(attempt_dir));
  EXPECT_THAT(spec, HasSubstr("\"model_path\": \"/models/tiny\""));
  EXPECT_THAT(spec, HasSubstr("\"max_steps\": 3"));
  EXPECT_THAT(ReadFile(layout::TrainLogPath(attempt_dir)), HasSubstr("fake trainer: mode succeed"));
  EXPECT_EQ(TrainerRecord("7", 1, "resume"), "");
  EXPECT_EQ(TrainerRecord("7", 1, "cuda"), "");  // a CPU agent hides GPUs from its trainer
  EXPECT_EQ(TrainerRecord("7", 1, "worker_token"), "unset") << "the trainer never sees it";

  // Every progress line relayed in order, with the checkpoint and eval between them.
  std::vector<ProgressReport> reports = ReportsOf("7");
  std::vector<std::string> kinds;
  std::vector<int> progress_steps;
  std::vector<double> losses;
  double last_cost = 0;
  double last_lease = 0;
  for (const ProgressReport& report : reports) {
    EXPECT_EQ(report.worker_id(), "w1");
    EXPECT_EQ(report.attempt(), 1);
    EXPECT_GE(report.accrued_usd(), last_cost) << "cost went down";
    EXPECT_GE(report.lease_seconds(), last_lease);
    EXPECT_NEAR(report.accrued_usd(), 3.6 * report.lease_seconds() / 3600, 1e-12);
    last_cost = report.accrued_usd();
    last_lease = report.lease_seconds();
    if (report.update().kind() == TrainerUpdate::COST) continue;
    kinds.push_back(TrainerUpdate::Kind_Name(report.update().kind()));
    if (report.update().kind() == TrainerUpdate::PROGRESS) {
      progress_steps.push_back(report.update().step());
      losses.push_back(report.update().loss());
    }
  }
  EXPECT_THAT(kinds,
              ::testing::ElementsAre("PROGRESS", "PROGRESS", "CHECKPOINT", "EVAL", "PROGRESS"));
  EXPECT_THAT(progress_steps, ::testing::ElementsAre(1, 2, 3));
  EXPECT_THAT(losses, ::testing::ElementsAre(3.0, 2.5, 2.0));
  EXPECT_GT(finish.accrued_usd(), 0);
  EXPECT_GE(finish.accrued_usd(), last_cost);
}

TEST_F(WorkerAgentTest, SendsCostOnlyReportsWhileTheTrainerIsSilent) {
  StartWorker();
  fake().QueueLease(MakeLease("8", 1, "silent"));
  WaitForFinish("8");
  int cost_reports_before_progress = 0;
  for (const ProgressReport& report : ReportsOf("8")) {
    if (report.update().kind() == TrainerUpdate::PROGRESS) break;
    if (report.update().kind() == TrainerUpdate::COST) ++cost_reports_before_progress;
  }
  // 1.5 s of silence at a 0.2 s report interval.
  EXPECT_GE(cost_reports_before_progress, 4);
}

TEST_F(WorkerAgentTest, TrainerErrorFailsTheAttemptWithItsOwnMessageAndNextJobRuns) {
  StartWorker();
  fake().QueueLease(MakeLease("9", 1, "fail"));
  fake().QueueLease(MakeLease("10", 1, "succeed"));
  FinishAttemptRequest failed = WaitForFinish("9");
  EXPECT_EQ(failed.outcome(), FinishAttemptRequest::FAILED);
  EXPECT_EQ(failed.message(), "model.safetensors: header length 999999 exceeds file size 12");
  FinishAttemptRequest next = WaitForFinish("10");
  EXPECT_EQ(next.outcome(), FinishAttemptRequest::SUCCEEDED) << next.DebugString();
  EXPECT_EQ(next.worker_id(), failed.worker_id());
  EXPECT_EQ(fake().Snapshot().registrations.size(), 1u) << "the agent restarted";
}

// The trainer's reasons reach the server: an early stop is a success that says so, a diverged
// loss a failure that says so; a plain success or error carries no reason.
TEST_F(WorkerAgentTest, TheTrainersEarlyStopAndDivergenceAreReportedAsFinishReasons) {
  StartWorker();
  fake().QueueLease(MakeLease("31", 1, "early-stop"));
  fake().QueueLease(MakeLease("32", 1, "diverge"));
  fake().QueueLease(MakeLease("33", 1, "succeed"));
  fake().QueueLease(MakeLease("34", 1, "fail"));
  const FinishAttemptRequest early = WaitForFinish("31");
  EXPECT_EQ(early.outcome(), FinishAttemptRequest::SUCCEEDED) << early.DebugString();
  EXPECT_EQ(early.reason(), v1::Job::EARLY_STOPPED);
  EXPECT_FALSE(early.adapter_path().empty());
  const FinishAttemptRequest diverged = WaitForFinish("32");
  EXPECT_EQ(diverged.outcome(), FinishAttemptRequest::FAILED) << diverged.DebugString();
  EXPECT_EQ(diverged.reason(), v1::Job::LOSS_DIVERGED);
  EXPECT_THAT(diverged.message(), HasSubstr("loss diverged at step 2"));
  EXPECT_EQ(WaitForFinish("33").reason(), v1::Job::REASON_UNSPECIFIED);
  EXPECT_EQ(WaitForFinish("34").reason(), v1::Job::REASON_UNSPECIFIED);
}

TEST_F(WorkerAgentTest, TrainerCrashFailsTheAttemptButNotTheAgent) {
  StartWorker();
  fake().QueueLease(MakeLease("11", 1, "crash"));
  fake().QueueLease(MakeLease("12", 1, "succeed"));
  FinishAttemptRequest crashed = WaitForFinish("11");
  EXPECT_EQ(crashed.outcome(), FinishAttemptRequest::FAILED);
  EXPECT_THAT(crashed.message(), HasSubstr("killed by signal 11"));
  EXPECT_THAT(crashed.message(), HasSubstr("about to crash"));  // the tail of train.log
  EXPECT_EQ(crashed.final_update().step(), 1);
  EXPECT_EQ(WaitForFinish("12").outcome(), FinishAttemptRequest::SUCCEEDED);
  EXPECT_FALSE(worker_->TryWait().has_value()) << "the agent died";
}

TEST_F(WorkerAgentTest, MalformedTrainerLinesAreSkipped) {
  StartWorker();
  fake().QueueLease(MakeLease("13", 1, "garbage"));
  FinishAttemptRequest finish = WaitForFinish("13");
  EXPECT_EQ(finish.outcome(), FinishAttemptRequest::SUCCEEDED) << finish.DebugString();
  std::vector<int> steps;
  for (const ProgressReport& report : ReportsOf("13")) {
    if (report.update().kind() == TrainerUpdate::PROGRESS) steps.push_back(report.update().step());
  }
  EXPECT_THAT(steps, ::testing::ElementsAre(1, 2, 3));
  EXPECT_THAT(ReadFile(agent_log_), HasSubstr("not a JSON object: this is not json"));
}

TEST_F(WorkerAgentTest, CancelOnTheStreamStopsTheTrainer) {
  StartWorker();
  fake().QueueLease(MakeLease("14", 1, "preemptible"));
  ASSERT_TRUE(WaitForReport("14", TrainerUpdate::PROGRESS));
  pid_t trainer = TrainerPid("14", 1);
  ASSERT_FALSE(ProcessGone(trainer));
  absl::Time cancel_time = absl::Now();
  fake().CancelOnStream("14", "cancelled by alice");
  FinishAttemptRequest finish = WaitForFinish("14");
  EXPECT_LT(absl::Now() - cancel_time, absl::Seconds(10));
  EXPECT_EQ(finish.outcome(), FinishAttemptRequest::CANCELLED);
  EXPECT_EQ(finish.message(), "cancelled by alice");
  EXPECT_TRUE(ProcessGone(trainer)) << "trainer " << trainer << " left behind";
}

TEST_F(WorkerAgentTest, TrainerIgnoringSigtermIsKilledAfterTheGracePeriod) {
  StartWorker({"--cancel-grace-seconds", "0.5"});
  fake().QueueLease(MakeLease("15", 1, "stubborn"));
  ASSERT_TRUE(WaitForReport("15", TrainerUpdate::PROGRESS));
  pid_t trainer = TrainerPid("15", 1);
  absl::Time cancel_time = absl::Now();
  fake().CancelOnStream("15", "stop");
  FinishAttemptRequest finish = WaitForFinish("15");
  absl::Duration took = absl::Now() - cancel_time;
  EXPECT_EQ(finish.outcome(), FinishAttemptRequest::CANCELLED);
  EXPECT_GE(took, absl::Milliseconds(500)) << "SIGKILL before the grace period ended";
  EXPECT_LT(took, absl::Seconds(10));
  EXPECT_TRUE(ProcessGone(trainer)) << "trainer " << trainer << " left behind";
}

TEST_F(WorkerAgentTest, CancelFromHeartbeatStopsTheTrainer) {
  StartWorker();
  fake().QueueLease(MakeLease("16", 1, "preemptible"));
  ASSERT_TRUE(WaitForReport("16", TrainerUpdate::PROGRESS));
  fake().CancelOnHeartbeat("16");
  FinishAttemptRequest finish = WaitForFinish("16");
  EXPECT_EQ(finish.outcome(), FinishAttemptRequest::CANCELLED);
  EXPECT_TRUE(ProcessGone(TrainerPid("16", 1)));
}

TEST_F(WorkerAgentTest, SigtermPreemptsWithAFreshCheckpointAndExits) {
  StartWorker();
  fake().QueueLease(MakeLease("17", 2, "preemptible"));
  ASSERT_TRUE(WaitForReport("17", TrainerUpdate::PROGRESS));
  pid_t trainer = TrainerPid("17", 2);
  ASSERT_OK(worker_->Signal(SIGTERM));
  FinishAttemptRequest finish = WaitForFinish("17");
  const std::string checkpoint = layout::CheckpointDir(layout::AttemptDir(work_dir_, "17", 2), 7);
  EXPECT_EQ(finish.outcome(), FinishAttemptRequest::PREEMPTED) << finish.DebugString();
  EXPECT_EQ(finish.last_checkpoint(), checkpoint);
  // The checkpoint written on SIGTERM was relayed like any other.
  bool relayed = false;
  for (const ProgressReport& report : ReportsOf("17")) {
    relayed |= report.update().kind() == TrainerUpdate::CHECKPOINT &&
               report.update().checkpoint_path() == checkpoint && report.update().step() == 7;
  }
  EXPECT_TRUE(relayed);
  absl::StatusOr<ExitStatus> exit = worker_->Wait(kTimeout);
  ASSERT_OK(exit);
  EXPECT_TRUE(exit->success()) << exit->ToString();
  EXPECT_TRUE(ProcessGone(trainer));
}

TEST_F(WorkerAgentTest, IdleAgentExitsPromptlyOnSigterm) {
  StartWorker();
  ASSERT_TRUE(fake().WaitFor([](const auto& log) { return log.lease_calls > 0; }, kTimeout));
  ASSERT_OK(worker_->Signal(SIGTERM));
  absl::StatusOr<ExitStatus> exit = worker_->Wait(absl::Seconds(5));
  ASSERT_OK(exit);
  EXPECT_TRUE(exit->success()) << exit->ToString();
}

TEST_F(WorkerAgentTest, PassesTheResumeCheckpointAndVisibleGpus) {
  StartWorker({"--gpus", "3,1"});
  Lease lease = MakeLease("18", 2, "succeed");
  const std::string checkpoint = layout::CheckpointDir(layout::AttemptDir(work_dir_, "18", 1), 2);
  std::filesystem::create_directories(checkpoint);
  lease.set_resume_checkpoint(checkpoint);
  fake().QueueLease(lease);
  WaitForFinish("18");
  EXPECT_EQ(TrainerRecord("18", 2, "resume"), checkpoint);
  EXPECT_EQ(TrainerRecord("18", 2, "cuda"), "3,1");
  EXPECT_EQ(fake().Snapshot().registrations[0].info().gpus(), 2);
  EXPECT_NE(fake().Snapshot().registrations[0].info().accelerator(), "cpu");
}

// Issue 10.1: a lease can only resume a checkpoint of its own job in this worker's work dir.
TEST_F(WorkerAgentTest, AResumeCheckpointOutsideTheJobsFolderFailsTheAttempt) {
  StartWorker();
  const std::string other_job = layout::CheckpointDir(layout::AttemptDir(work_dir_, "20", 1), 2);
  std::filesystem::create_directories(other_job);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"21", other_job},
      {"22", "/etc"},
      {"23", layout::JobDir(work_dir_, "23") + "/../20/attempt-1/checkpoints/step-2"}};
  for (const auto& [job_id, checkpoint] : cases) {
    std::filesystem::create_directories(layout::JobDir(work_dir_, job_id));
    Lease lease = MakeLease(job_id, 2, "succeed");
    lease.set_resume_checkpoint(checkpoint);
    fake().QueueLease(lease);
    const FinishAttemptRequest finish = WaitForFinish(job_id);
    EXPECT_EQ(finish.outcome(), FinishAttemptRequest::FAILED) << checkpoint;
    EXPECT_THAT(finish.message(), HasSubstr("resume_checkpoint is not inside this job's folder"));
  }
}

TEST_F(WorkerAgentTest, ReRegistersWhenTheServerForgetsIt) {
  StartWorker();
  ASSERT_TRUE(fake().WaitFor([](const auto& log) { return !log.heartbeats.empty(); }, kTimeout));
  fake().ForgetWorkers();
  ASSERT_TRUE(
      fake().WaitFor([](const auto& log) { return log.registrations.size() >= 2; }, kTimeout));
  fake().QueueLease(MakeLease("19", 1, "succeed"));
  FinishAttemptRequest finish = WaitForFinish("19");
  EXPECT_EQ(finish.outcome(), FinishAttemptRequest::SUCCEEDED);
  EXPECT_EQ(finish.worker_id(), "w2");
}

TEST_F(WorkerAgentTest, UnsafeJobIdFailsWithoutTouchingTheDisk) {
  StartWorker();
  fake().QueueLease(MakeLease("../../etc", 1, "succeed"));
  FinishAttemptRequest finish = WaitForFinish("../../etc");
  EXPECT_EQ(finish.outcome(), FinishAttemptRequest::FAILED);
  EXPECT_THAT(finish.message(), HasSubstr("cannot be used as a folder name"));
}

// The worker checks a lease's paths against its own roots, whatever the server accepted: a
// path outside them fails the attempt before the trainer starts, naming the field.
TEST_F(WorkerAgentTest, LeasePathsOutsideTheDataRootsFailBeforeTheTrainerStarts) {
  const std::string root = std::filesystem::path(work_dir_).parent_path() / "roots";
  std::filesystem::create_directories(root + "/models/tiny");
  std::filesystem::create_symlink("/etc", root + "/etc-link");
  data_root_ = root;
  StartWorker();
  struct Case {
    std::string job_id;
    std::string model_path;
    std::string train_path;
    std::string field;
  };
  const std::vector<Case> cases = {
      {"j-abs", root + "/models/tiny", "/etc/passwd", "spec.train_path"},
      {"j-dots", root + "/models/tiny", root + "/../../etc/passwd", "spec.train_path"},
      {"j-link", root + "/models/tiny", root + "/etc-link/passwd", "spec.train_path"},
      {"j-model", "/usr", root + "/train.jsonl", "spec.model_path"},
  };
  for (const Case& c : cases) {
    Lease lease = MakeLease(c.job_id, 1, "succeed");
    lease.mutable_spec()->set_model_path(c.model_path);
    lease.mutable_spec()->set_train_path(c.train_path);
    fake().QueueLease(lease);
    FinishAttemptRequest finish = WaitForFinish(c.job_id);
    EXPECT_EQ(finish.outcome(), FinishAttemptRequest::FAILED) << c.job_id;
    EXPECT_THAT(finish.message(), HasSubstr(c.field + " is not inside this worker's data roots"));
    EXPECT_THAT(finish.message(), Not(HasSubstr("root:")));  // nothing of /etc/passwd
    // The (fake) trainer never ran: it would have written fake-trainer.txt.
    EXPECT_FALSE(
        std::filesystem::exists(layout::AttemptDir(work_dir_, c.job_id, 1) + "/fake-trainer.txt"))
        << c.job_id;
  }
}

TEST(WorkerFlagsTest, BadCommandLinesExitWithUsageError) {
  const std::string worker = std::string(TUNELEDGER_BIN_DIR) + "/tuneledger-worker";
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  std::vector<Case> cases = {
      {{"--work-dir", "/tmp/x", "--price-per-gpu-hour", "1"}, "--server is required"},
      {{"--server", "h:1", "--price-per-gpu-hour", "1"}, "--work-dir is required"},
      {{"--server", "h:1", "--work-dir", "/tmp/x"}, "--price-per-gpu-hour is required"},
      {{"--server", "h:1", "--work-dir", "/tmp/x", "--price-per-gpu-hour", "-2"},
       "--price-per-gpu-hour: want USD in [0, 1e6], got '-2'"},
      {{"--server", "h:1", "--work-dir", "/tmp/x", "--price-per-gpu-hour", "1",
        "--on-demand-price-per-gpu-hour", "nan"},
       "--on-demand-price-per-gpu-hour: want USD in [0, 1e6], got 'nan'"},
      {{"--server", "h:1", "--work-dir", "/tmp/x", "--price-per-gpu-hour", "1", "--gpus", "0,x"},
       "--gpus: \"x\" is not a GPU index"},
      {{"--server", "h:1", "--work-dir", "/tmp/x", "--price-per-gpu-hour", "1"},
       "--data-root is required"},
      {{"--server", "h:1", "--work-dir", "/tmp/x", "--price-per-gpu-hour", "1", "--data-root",
        "/nonexistent/data"},
       "--data-root: not a folder: '/nonexistent/data'"},
      {{"--server", "h:1", "--work-dir", "/tmp/x", "--price-per-gpu-hour", "1", "--data-root",
        "/tmp"},
       "a worker token is required"},
      {{"--server", "h:1", "--work-dir", "/tmp/x", "--price-per-gpu-hour", "1", "--data-root",
        "/tmp", "--token-file", "/nonexistent/token"},
       "--token-file /nonexistent/token: cannot read it"},
      {{"--server", "h:1", "--work-dir", "/tmp/x", "--price-per-gpu-hour", "1", "--data-root",
        "/tmp", "--token-file", "/dev/null"},
       "the token is empty"},
      {{"--server", "h:1", "--work-dir", "/tmp/x", "--price-per-gpu-hour", "1", "--data-root",
        "/tmp", "--token-file", TUNELEDGER_SOURCE_DIR "/tests/worker/testdata/worker_token.txt",
        "--trainer", "/nonexistent/train"},
       "--trainer: /nonexistent/train is not an executable file"},
      {{"--server", "h:1", "--work-dir", "/tmp/x", "--price-per-gpu-hour", "1", "--rendezvous-host",
        "10.0.0.1:29500"},
       "--rendezvous-host: want a hostname or IPv4 address, got '10.0.0.1:29500'"},
      {{"--server", "h:1", "--work-dir", "/tmp/x", "--price-per-gpu-hour", "1",
        "--rendezvous-port-base", "65500"},
       "--rendezvous-port-base: want a port in [1, 65471], got '65500'"},
      {{"--bogus"}, "unknown flag --bogus"},
  };
  for (const Case& c : cases) {
    ChildProcessOptions options;
    options.argv = {worker};
    options.argv.insert(options.argv.end(), c.args.begin(), c.args.end());
    absl::StatusOr<CompletedProcess> result = ChildProcess::RunToCompletion(options, kTimeout);
    ASSERT_OK(result);
    EXPECT_EQ(result->status.code, 2) << c.message;
    EXPECT_THAT(result->stderr_text, HasSubstr(c.message));
  }
  ChildProcessOptions help;
  help.argv = {worker, "--help"};
  absl::StatusOr<CompletedProcess> result = ChildProcess::RunToCompletion(help, kTimeout);
  ASSERT_OK(result);
  EXPECT_TRUE(result->status.success());
  EXPECT_THAT(result->stdout_text, HasSubstr("--price-per-gpu-hour USD"));
}

}  // namespace
}  // namespace tuneledger
