// The whole service end to end on loopback with the real binaries: tuneledger-server (via the
// shared harness), tuneledger-worker agents, tuneledger-train on the bundled tiny model, and
// tunectl.
//
//   - submit -> RUNNING -> SUCCEEDED with a PEFT adapter; `tunectl watch --output json` shows
//     increasing steps and a falling loss; events SUBMITTED, STARTED, CHECKPOINT(s), SUCCEEDED;
//     the adapter path on the job (GetJob / tunectl get) and in its SUCCEEDED event;
//   - cancel during training: trainer gone within 10 s, CANCELLED with reason USER, nothing
//     left behind;
//   - SIGKILL a worker mid-job while another is idle: after the heartbeat timeout the job runs
//     on the other worker from a checkpoint (attempt 2 starts at a step > 0) and its adapter
//     equals an uninterrupted run's with the same seed (max abs diff <= 1e-6, compared by an
//     independent reader);
//   - SIGTERM a worker: attempt PREEMPTED with a fresh checkpoint, the job resumes elsewhere;
//   - a corrupt model: FAILED with the trainer's own message; the same worker runs the next job.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "base/child_process.h"
#include "base/work_dir_layout.h"
#include "base/worker_token_env.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/proto_json.h"
#include "tests/testing/server_harness.h"
#include "tests/testing/source_path.h"
#include "tests/testing/status_matchers.h"
#include "tuneledger/v1/jobs.pb.h"

namespace tuneledger {
namespace {

namespace fs = std::filesystem;
namespace layout = ::tuneledger::layout;
using ::testing::HasSubstr;
using ::testing::Not;
using ::tuneledger::testing::CommandResult;
using ::tuneledger::testing::ServerHarness;
using ::tuneledger::v1::Job;
using ::tuneledger::v1::JobEvent;

// The job every test trains: the demo LoRA task on the bundled model, small enough to take
// seconds on two cores. Checkpoints every kCheckpointEvery steps.
constexpr int kSteps = 12;
constexpr int kCheckpointEvery = 3;
// Every step lasts at least this long (TUNELEDGER_TRAIN_MIN_STEP_SECONDS), so that a test that
// acts mid-run (kill, preempt, watch) still finds the job running on a machine where the tiny
// model trains hundreds of steps a second. Two busy cores here take about this long anyway.
constexpr char kMinStepSeconds[] = "0.25";
// The workers' credential: the harness lists it in the server's tokens file.
constexpr char kWorkerToken[] = "service-e2e-worker-token";
constexpr absl::Duration kJobTimeout = absl::Minutes(4);

using ::tuneledger::testing::ParseProtoJson;
using ::tuneledger::testing::SourcePath;

std::string ReadText(const std::string& path) {
  absl::StatusOr<std::string> text = testing::ReadFile(path);
  return text.ok() ? *text : "";
}

// Live processes whose command line mentions `needle` (e.g. a test's temp dir) and, if given,
// `program`: what a test leaves behind if it leaks.
std::vector<pid_t> PidsMentioning(const std::string& needle, const std::string& program = "") {
  std::vector<pid_t> found;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    int pid = 0;
    if (!absl::SimpleAtoi(entry.path().filename().string(), &pid) || pid == getpid()) continue;
    std::string cmdline = ReadText(entry.path() / "cmdline");
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    if (ReadText(entry.path() / "stat").find(") Z") != std::string::npos) continue;  // dead
    if (absl::StrContains(cmdline, needle) &&
        (program.empty() || absl::StrContains(cmdline, program))) {
      found.push_back(pid);
    }
  }
  return found;
}

std::vector<std::string> ProcessesMentioning(const std::string& needle,
                                             const std::string& program = "") {
  std::vector<std::string> found;
  for (pid_t pid : PidsMentioning(needle, program)) {
    std::string cmdline = ReadText(absl::StrCat("/proc/", pid, "/cmdline"));
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    found.push_back(absl::StrCat(pid, ": ", cmdline));
  }
  return found;
}

// ProcessesMentioning, polled until it is empty or `timeout` passes: a process the kernel has
// signalled to die may take a moment to leave the process table on a loaded machine.
std::vector<std::string> ProcessesMentioningAfter(absl::Duration timeout, const std::string& needle,
                                                  const std::string& program = "") {
  const absl::Time deadline = absl::Now() + timeout;
  std::vector<std::string> found = ProcessesMentioning(needle, program);
  while (!found.empty() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));
    found = ProcessesMentioning(needle, program);
  }
  return found;
}

double Seconds(const google::protobuf::Timestamp& time) {
  return static_cast<double>(time.seconds()) + time.nanos() / 1e9;
}

class ServiceEndToEndTest : public ::testing::Test {
 protected:
  // A tuneledger-worker started by the test (so that it can be killed on purpose).
  struct Worker {
    std::string name;
    std::string log_path;
    std::unique_ptr<ChildProcess> process;
  };

  void SetUp() override {
    ASSERT_TRUE(fs::exists(SourcePath("models/tiny-llama/config.json")))
        << "the bundled model is missing: models/build_tiny_llama.sh makes it";
    work_dir_ = server_.temp_dir() + "/work";
    fs::create_directories(work_dir_);
    // Short heartbeat timeout so that a killed worker is declared lost within seconds, yet long
    // enough that a live worker on two overloaded cores (tests in parallel, each with trainers
    // fsyncing checkpoints) is not: 3 s lost one mid-attempt under `ctest -j2`.
    server_.options().extra_args = {"--heartbeat-timeout", "8s", "--report-interval", "500ms"};
    server_.options().worker_token = kWorkerToken;
  }

  void TearDown() override {
    for (Worker& worker : workers_) {
      if (worker.process != nullptr) worker.process->Terminate(absl::Seconds(20));
      if (HasFailure()) {
        std::cerr << "---- worker " << worker.name << " log ----\n"
                  << ReadText(worker.log_path) << "\n";
      }
    }
    if (server_.running()) server_.Stop(absl::Seconds(30)).IgnoreError();
    if (HasFailure()) std::cerr << "---- server log ----\n" << server_.LogTail(20000) << "\n";
    // Nothing this test started may outlive it: no server, worker or trainer.
    EXPECT_THAT(ProcessesMentioning(server_.temp_dir()), ::testing::IsEmpty());
  }

  Worker& StartWorker(const std::string& name) {
    Worker worker;
    worker.name = name;
    worker.log_path = absl::StrCat(server_.temp_dir(), "/worker-", name, ".log");
    ChildProcessOptions options;
    options.argv = {testing::BinaryPath("tuneledger-worker"),
                    "--server",
                    server_.worker_address(),
                    "--data-root",
                    "/",
                    "--work-dir",
                    work_dir_,
                    "--price-per-gpu-hour",
                    "3.6",
                    "--name",
                    name};
    options.stdout_mode = StdioMode::kFile;
    options.stdout_path = worker.log_path;
    options.stderr_mode = StdioMode::kFile;
    options.stderr_path = worker.log_path;
    options.parent_death_signal = SIGKILL;
    options.env["TUNELEDGER_TRAIN_MIN_STEP_SECONDS"] = kMinStepSeconds;
    options.env[kWorkerTokenEnv] = kWorkerToken;
    absl::StatusOr<std::unique_ptr<ChildProcess>> started = ChildProcess::Start(options);
    EXPECT_OK(started);
    if (started.ok()) worker.process = std::move(*started);
    workers_.push_back(std::move(worker));
    return workers_.back();
  }

  CommandResult Tunectl(const std::vector<std::string>& args) {
    absl::StatusOr<CommandResult> result = server_.RunTunectl(args, absl::Seconds(60));
    EXPECT_OK(result);
    if (!result.ok()) return CommandResult{};
    return *result;
  }

  // Submits the small demo job; returns its id.
  std::string Submit(const std::string& name, std::vector<std::string> extra = {},
                     const std::string& model = SourcePath("models/tiny-llama")) {
    std::vector<std::string> args = {"--output",
                                     "json",
                                     "submit",
                                     "--model",
                                     model,
                                     "--train",
                                     SourcePath("models/demo/train.jsonl"),
                                     "--name",
                                     name,
                                     "--max-steps",
                                     absl::StrCat(kSteps),
                                     "--checkpoint-every",
                                     absl::StrCat(kCheckpointEvery),
                                     "--seed",
                                     "1234",
                                     "--lora-dropout",
                                     "0.1",
                                     "--lr",
                                     "0.003",
                                     "--batch-size",
                                     "4",
                                     "--seq-len",
                                     "64"};
    args.insert(args.end(), extra.begin(), extra.end());
    CommandResult result = Tunectl(args);
    EXPECT_EQ(result.exit_code, 0) << result.ToString();
    const std::string id = ParseProtoJson<google::protobuf::Struct>(result.stdout_text)
                               .fields()
                               .at("id")
                               .string_value();
    EXPECT_FALSE(id.empty()) << result.ToString();
    return id;
  }

  Job GetJob(const std::string& id) {
    CommandResult result = Tunectl({"--output", "json", "get", id});
    EXPECT_EQ(result.exit_code, 0) << result.ToString();
    return ParseProtoJson<Job>(result.stdout_text);
  }

  std::vector<JobEvent> Events(const std::string& id) {
    CommandResult result = Tunectl({"--output", "json", "events", id});
    EXPECT_EQ(result.exit_code, 0) << result.ToString();
    auto response = ParseProtoJson<tuneledger::v1::ListJobEventsResponse>(result.stdout_text);
    return {response.events().begin(), response.events().end()};
  }

  // Polls the job (there is no push for "until"): each poll is one tunectl run, so a deadline
  // bounds it, no sleep is needed between polls.
  Job WaitForJob(const std::string& id, const std::function<bool(const Job&)>& done,
                 absl::Duration timeout, const std::string& what) {
    const absl::Time deadline = absl::Now() + timeout;
    Job job;
    while (absl::Now() < deadline) {
      job = GetJob(id);
      if (done(job)) return job;
    }
    ADD_FAILURE() << "timed out waiting for job " << id << " to be " << what
                  << "; last seen: " << job.DebugString();
    return job;
  }

  Job WaitForFinalState(const std::string& id) {
    return WaitForJob(
        id,
        [](const Job& job) {
          return job.state() == Job::SUCCEEDED || job.state() == Job::FAILED ||
                 job.state() == Job::CANCELLED;
        },
        kJobTimeout, "finished");
  }

  // Waits until the job has a CHECKPOINT event with a step >= min_step in attempt `attempt`.
  void WaitForCheckpoint(const std::string& id, int attempt, int min_step) {
    const absl::Time deadline = absl::Now() + kJobTimeout;
    while (absl::Now() < deadline) {
      for (const JobEvent& event : Events(id)) {
        if (event.kind() == JobEvent::CHECKPOINT && event.attempt() == attempt &&
            event.step() >= min_step) {
          return;
        }
      }
    }
    ADD_FAILURE() << "no checkpoint at step >= " << min_step << " in attempt " << attempt;
  }

  std::string WorkerId(const std::string& name) {
    CommandResult result = Tunectl({"--output", "json", "workers"});
    auto response = ParseProtoJson<tuneledger::v1::ListWorkersResponse>(result.stdout_text);
    for (const auto& worker : response.workers()) {
      auto it = worker.labels().find("name");
      if (it != worker.labels().end() && it->second == name &&
          worker.state() != tuneledger::v1::Worker::LOST) {
        return worker.id();
      }
    }
    return "";
  }

  // "trainer started at step N" lines of a worker's log, in order.
  static std::vector<int> TrainerStartSteps(const std::string& log_path) {
    std::vector<int> steps;
    for (absl::string_view line : absl::StrSplit(ReadText(log_path), '\n')) {
      size_t at = line.find("trainer started at step ");
      if (at == absl::string_view::npos) continue;
      absl::string_view rest = line.substr(at + strlen("trainer started at step "));
      int step = -1;
      if (absl::SimpleAtoi(rest.substr(0, rest.find(' ')), &step)) steps.push_back(step);
    }
    return steps;
  }

  static std::string AdapterFile(const std::string& adapter_dir) {
    return adapter_dir + "/adapter_model.safetensors";
  }

  // Compares two adapters with tests/worker/testdata/compare_adapters.py (numpy, its own
  // safetensors reader). Empty on success, else what differed.
  static std::string CompareAdapters(const std::string& expected, const std::string& actual) {
    ChildProcessOptions options;
    options.argv = {"/usr/bin/python3", SourcePath("tests/worker/testdata/compare_adapters.py"),
                    AdapterFile(expected), AdapterFile(actual), "1e-6"};
    absl::StatusOr<CompletedProcess> run =
        ChildProcess::RunToCompletion(options, absl::Seconds(60));
    if (!run.ok()) return std::string(run.status().message());
    if (run->status.success()) return "";
    return absl::StrCat("expected (uninterrupted) ", expected, " vs actual (resumed) ", actual,
                        ": ", run->status.ToString(), "\n", run->stdout_text, run->stderr_text);
  }

  ServerHarness server_;
  std::string work_dir_;
  std::deque<Worker> workers_;  // a deque: StartWorker() hands out references
};

TEST_F(ServiceEndToEndTest, SubmittedJobTrainsToSuccessWithLiveProgressAndAnAdapter) {
  // The embedded setup: the server runs its own worker.
  server_.options().extra_args.insert(
      server_.options().extra_args.end(),
      {"--local-workers", "1", "--work-dir", work_dir_, "--price-per-gpu-hour", "2.5"});
  ASSERT_OK(server_.Start());
  const std::string id = Submit("e2e-success");

  // Watch live from the start, as a user would.
  absl::StatusOr<std::unique_ptr<ChildProcess>> watch =
      server_.StartTunectl({"--output", "json", "watch", id});
  ASSERT_OK(watch);
  testing::LineReader reader((*watch)->stdout_fd());
  std::vector<Job> snapshots;
  std::vector<JobEvent> streamed_events;
  const absl::Time deadline = absl::Now() + kJobTimeout;
  while (absl::Now() < deadline) {
    absl::StatusOr<std::string> line = reader.ReadLine(deadline - absl::Now());
    if (!line.ok()) break;  // OUT_OF_RANGE: watch ended with the job
    auto update = ParseProtoJson<tuneledger::v1::WatchJobResponse>(*line);
    snapshots.push_back(update.job());
    if (update.has_event()) streamed_events.push_back(update.event());
  }
  absl::StatusOr<ExitStatus> watch_exit = (*watch)->Wait(absl::Seconds(30));
  ASSERT_OK(watch_exit);
  EXPECT_EQ(watch_exit->code, 0) << "watch exits 0 only for SUCCEEDED: " << watch_exit->ToString();

  // Live progress: steps increase, loss falls.
  std::vector<int> steps;
  std::vector<double> losses;
  bool saw_running = false;
  for (const Job& job : snapshots) {
    saw_running |= job.state() == Job::RUNNING;
    const int step = job.progress().step();
    if (step > 0 && (steps.empty() || step != steps.back())) {
      steps.push_back(step);
      losses.push_back(job.progress().loss());
    }
  }
  EXPECT_TRUE(saw_running);
  ASSERT_GE(steps.size(), 5u) << "watch showed too few progress updates: "
                              << absl::StrJoin(steps, ",");
  EXPECT_TRUE(std::is_sorted(steps.begin(), steps.end()) &&
              std::adjacent_find(steps.begin(), steps.end()) == steps.end())
      << "steps not increasing: " << absl::StrJoin(steps, ",");
  EXPECT_EQ(steps.back(), kSteps);
  const double first_loss = (losses[0] + losses[1]) / 2;
  const double last_loss = (losses[losses.size() - 1] + losses[losses.size() - 2]) / 2;
  EXPECT_LT(last_loss, first_loss) << "loss did not fall: " << absl::StrJoin(losses, ",");

  // Final state, adapter on the job and on disk.
  Job job = GetJob(id);
  ASSERT_EQ(job.state(), Job::SUCCEEDED) << job.DebugString();
  ASSERT_FALSE(job.adapter_path().empty());
  EXPECT_EQ(job.adapter_path(), layout::AdapterDir(layout::AttemptDir(work_dir_, id, 1)));
  EXPECT_TRUE(fs::is_regular_file(AdapterFile(job.adapter_path())));
  const std::string config = ReadText(job.adapter_path() + "/adapter_config.json");
  EXPECT_THAT(config, HasSubstr("\"peft_type\""));
  EXPECT_THAT(config, HasSubstr("LORA"));
  EXPECT_GT(job.cost().accrued_usd(), 0);
  CommandResult get_table = Tunectl({"get", id});
  EXPECT_THAT(get_table.stdout_text, HasSubstr(job.adapter_path()));

  // The stored progress history, for plotting: every step of this short job, in order.
  CommandResult history = Tunectl({"--output", "json", "history", id});
  ASSERT_EQ(history.exit_code, 0) << history.ToString();
  auto points = ParseProtoJson<tuneledger::v1::ProgressHistory>(history.stdout_text).points();
  std::vector<int> history_steps;
  for (const auto& point : points) history_steps.push_back(point.step());
  // (FinishAttempt's final update, with the final losses, repeats the last step.)
  history_steps.erase(std::unique(history_steps.begin(), history_steps.end()), history_steps.end());
  std::vector<int> all_steps(kSteps);
  std::iota(all_steps.begin(), all_steps.end(), 1);
  EXPECT_EQ(history_steps, all_steps);
  EXPECT_THAT(Tunectl({"history", id}).stdout_text, HasSubstr("EVAL LOSS"));

  // Events: SUBMITTED (QUEUED), STARTED (RUNNING), CHECKPOINT(s), SUCCEEDED with the adapter.
  std::vector<JobEvent> events = Events(id);
  std::vector<std::string> kinds;
  for (const JobEvent& event : events) {
    if (event.kind() == JobEvent::SUBMITTED || event.kind() == JobEvent::STARTED ||
        event.kind() == JobEvent::CHECKPOINT || event.kind() == JobEvent::SUCCEEDED) {
      kinds.push_back(JobEvent::Kind_Name(event.kind()));
    }
  }
  std::vector<std::string> expected_kinds = {"SUBMITTED", "STARTED"};
  for (int step = kCheckpointEvery; step < kSteps; step += kCheckpointEvery) {
    expected_kinds.push_back("CHECKPOINT");
  }
  // The trainer may or may not checkpoint at the last step as well.
  if (kinds.size() == expected_kinds.size() + 2) expected_kinds.push_back("CHECKPOINT");
  expected_kinds.push_back("SUCCEEDED");
  EXPECT_EQ(kinds, expected_kinds);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.front().state(), Job::QUEUED);
  for (const JobEvent& event : events) {
    if (event.kind() == JobEvent::STARTED) {
      EXPECT_EQ(event.state(), Job::RUNNING);
    }
    if (event.kind() == JobEvent::SUCCEEDED) {
      EXPECT_EQ(event.path(), job.adapter_path());
    }
  }
  // The watch stream carried the same events live.
  EXPECT_FALSE(streamed_events.empty());
}

TEST_F(ServiceEndToEndTest, CancelDuringTrainingStopsTheTrainerWithinTenSeconds) {
  ASSERT_OK(server_.Start());
  StartWorker("a");
  const std::string id = Submit("e2e-cancel", {"--max-steps", "100000"});
  WaitForJob(
      id, [](const Job& job) { return job.state() == Job::RUNNING && job.progress().step() > 0; },
      kJobTimeout, "training");
  const std::string attempt_dir = layout::AttemptDir(work_dir_, id, 1);

  std::vector<pid_t> trainers = PidsMentioning(attempt_dir, "tuneledger-train");
  ASSERT_EQ(trainers.size(), 1u);
  // A pidfd becomes readable when the process ends: wait on it, not on a timer.
  const int trainer_fd = static_cast<int>(syscall(SYS_pidfd_open, trainers[0], 0));
  ASSERT_GE(trainer_fd, 0) << strerror(errno);

  const absl::Time cancelled_at = absl::Now();
  CommandResult cancel = Tunectl({"cancel", id});
  ASSERT_EQ(cancel.exit_code, 0) << cancel.ToString();
  pollfd trainer_exit = {trainer_fd, POLLIN, 0};
  const int ended = poll(&trainer_exit, 1, 15'000);
  const absl::Duration gone_after = absl::Now() - cancelled_at;
  close(trainer_fd);
  EXPECT_EQ(ended, 1) << "the trainer still runs 15 s after the cancel";
  EXPECT_LT(gone_after, absl::Seconds(10)) << "the trainer outlived the cancel";

  Job job = WaitForFinalState(id);
  EXPECT_EQ(job.state(), Job::CANCELLED);
  EXPECT_EQ(job.reason(), Job::USER);
  // The worker is free again: it runs the next job.
  const std::string next = Submit("e2e-after-cancel", {"--max-steps", "2"});
  EXPECT_EQ(WaitForFinalState(next).state(), Job::SUCCEEDED);
}

TEST_F(ServiceEndToEndTest, KilledWorkersJobResumesOnIdleWorkerAndMatchesAnUninterruptedRun) {
  ASSERT_OK(server_.Start());
  Worker& a = StartWorker("a");
  const std::string id = Submit("e2e-killed");
  WaitForJob(
      id, [](const Job& job) { return job.state() == Job::RUNNING; }, kJobTimeout, "RUNNING");
  Worker& b = StartWorker("b");  // idle: the job is already leased to a
  WaitForCheckpoint(id, /*attempt=*/1, kCheckpointEvery);
  ASSERT_OK(a.process->Signal(SIGKILL));
  ASSERT_OK(a.process->Wait(absl::Seconds(10)));
  // Its trainer dies with it (parent-death signal): gone within 2 s (the kernel kills it at once;
  // leaving the process table can take a moment on a loaded machine), and no orphan trained on
  // to the end of the job (it would have written attempt 1's adapter).
  const std::string attempt1 = layout::AttemptDir(work_dir_, id, 1);
  EXPECT_THAT(ProcessesMentioningAfter(absl::Seconds(2), attempt1, "tuneledger-train"),
              ::testing::IsEmpty());
  EXPECT_FALSE(fs::exists(layout::AdapterDir(attempt1)));

  Job job = WaitForFinalState(id);
  ASSERT_EQ(job.state(), Job::SUCCEEDED) << job.DebugString();
  EXPECT_EQ(job.attempts(), 2);
  EXPECT_EQ(job.adapter_path(), layout::AdapterDir(layout::AttemptDir(work_dir_, id, 2)));
  // Attempt 2 ran on b and started from a checkpoint, not from scratch.
  const std::string b_id = WorkerId("b");
  bool requeued = false;
  for (const JobEvent& event : Events(id)) {
    requeued |= event.kind() == JobEvent::REQUEUED && event.attempt() == 1;
    if (event.kind() == JobEvent::STARTED && event.attempt() == 2) {
      EXPECT_EQ(event.worker_id(), b_id);
    }
  }
  EXPECT_TRUE(requeued) << "no REQUEUED event for the lost attempt";
  std::vector<int> b_starts = TrainerStartSteps(b.log_path);
  ASSERT_EQ(b_starts.size(), 1u) << ReadText(b.log_path);
  EXPECT_GT(b_starts[0], 0) << "attempt 2 started from scratch";

  // Preemption waste: the lost attempt's lease after its last CHECKPOINT event, at its price.
  double last_checkpoint_time = 0;
  for (const JobEvent& event : Events(id)) {
    if (event.kind() == JobEvent::CHECKPOINT && event.attempt() == 1) {
      last_checkpoint_time = Seconds(event.time());
    }
  }
  const auto bill = ParseProtoJson<tuneledger::v1::CostReport>(
      Tunectl({"--output", "json", "cost", id}).stdout_text);
  ASSERT_EQ(bill.attempts_size(), 2) << bill.DebugString();
  const tuneledger::v1::AttemptCost& lost = bill.attempts(0);
  EXPECT_EQ(lost.state(), "LOST");
  // (Killed right after a checkpoint, it may have lost no step at all: then 0.)
  EXPECT_NEAR(lost.wasted_seconds(), std::max(0.0, Seconds(lost.end_time()) - last_checkpoint_time),
              1e-3)
      << bill.DebugString();
  EXPECT_NEAR(lost.wasted_usd(), 3.6 * lost.gpus() * lost.wasted_seconds() / 3600, 1e-9);
  EXPECT_EQ(bill.attempts(1).wasted_seconds(), 0);
  EXPECT_DOUBLE_EQ(bill.preemption_waste_usd(), lost.wasted_usd());

  // The cost card beside the adapter: the final bill, the lost attempt included, and the base
  // model's licence from its README front matter.
  const std::string card = ReadText(layout::CostCardPath(job.adapter_path()));
  EXPECT_EQ(card, bill.card_markdown());
  EXPECT_THAT(card, HasSubstr("| 1 | " + lost.worker_id() + " | LOST |"));
  EXPECT_THAT(card, HasSubstr("| 2 | " + b_id + " | SUCCEEDED |"));
  EXPECT_THAT(card, HasSubstr("| Base model licence | apache-2.0 (from README.md) |"));
  EXPECT_EQ(bill.base_model().license(), "apache-2.0");
  EXPECT_EQ(Tunectl({"cost", id, "--card"}).stdout_text, card);

  // The same job uninterrupted (same seed), on the same worker.
  const std::string reference = Submit("e2e-reference");
  Job reference_job = WaitForFinalState(reference);
  ASSERT_EQ(reference_job.state(), Job::SUCCEEDED) << reference_job.DebugString();
  EXPECT_EQ(CompareAdapters(reference_job.adapter_path(), job.adapter_path()), "");
}

TEST_F(ServiceEndToEndTest, PreemptedWorkerHandsAFreshCheckpointToAnotherWorker) {
  ASSERT_OK(server_.Start());
  Worker& a = StartWorker("a");
  // No periodic checkpoint before the end: the only checkpoint is the one SIGTERM makes.
  const std::string id = Submit("e2e-preempt", {"--checkpoint-every", "1000"});
  WaitForJob(
      id, [](const Job& job) { return job.state() == Job::RUNNING && job.progress().step() >= 3; },
      kJobTimeout, "past step 3");
  const absl::Time stop_requested = absl::Now();
  ASSERT_OK(a.process->Signal(SIGTERM));
  absl::StatusOr<ExitStatus> a_exit = a.process->Wait(absl::Seconds(60));
  ASSERT_OK(a_exit);
  EXPECT_TRUE(a_exit->success()) << a_exit->ToString();
  const double stop_seconds = absl::ToDoubleSeconds(absl::Now() - stop_requested);

  // The attempt ended PREEMPTED (REQUEUED, not lost) with the checkpoint it just wrote.
  Job queued = GetJob(id);
  EXPECT_EQ(queued.state(), Job::QUEUED) << queued.DebugString();
  const std::string attempt1 = layout::AttemptDir(work_dir_, id, 1);
  EXPECT_THAT(queued.last_checkpoint(), HasSubstr(layout::CheckpointsDir(attempt1) + "/step-"));
  EXPECT_TRUE(fs::is_directory(queued.last_checkpoint()));
  int checkpoint_step = 0;
  bool requeued = false;
  for (const JobEvent& event : Events(id)) {
    if (event.kind() == JobEvent::CHECKPOINT && event.attempt() == 1) {
      checkpoint_step = event.step();
      EXPECT_EQ(event.path(), queued.last_checkpoint());
    }
    requeued |= event.kind() == JobEvent::REQUEUED && event.attempt() == 1;
  }
  EXPECT_TRUE(requeued);
  EXPECT_GE(checkpoint_step, 3);
  // A clean stop is not a failure: the worker said goodbye (GONE, never LOST), and the
  // preemption is counted apart from failures.
  EXPECT_EQ(queued.preempted_attempts(), 1);
  EXPECT_EQ(queued.failed_attempts(), 0);
  const CommandResult workers = Tunectl({"--output", "json", "workers"});
  EXPECT_THAT(workers.stdout_text, HasSubstr("\"GONE\"")) << workers.ToString();
  EXPECT_THAT(workers.stdout_text, Not(HasSubstr("\"LOST\""))) << workers.ToString();

  Worker& b = StartWorker("b");
  Job job = WaitForFinalState(id);
  ASSERT_EQ(job.state(), Job::SUCCEEDED) << job.DebugString();
  EXPECT_EQ(job.attempts(), 2);
  std::vector<int> b_starts = TrainerStartSteps(b.log_path);
  ASSERT_EQ(b_starts.size(), 1u) << ReadText(b.log_path);
  EXPECT_EQ(b_starts[0], checkpoint_step) << "attempt 2 did not resume from the fresh checkpoint";
  // The checkpoint written at the stop saved every step: the preemption wasted only the time
  // from that checkpoint to the attempt's end, both after the SIGTERM. (Counted from the
  // attempt's start instead, the waste would include 3 steps of at least kMinStepSeconds each
  // before the SIGTERM.)
  const auto bill = ParseProtoJson<tuneledger::v1::CostReport>(
      Tunectl({"--output", "json", "cost", id}).stdout_text);
  ASSERT_EQ(bill.attempts_size(), 2) << bill.DebugString();
  EXPECT_EQ(bill.attempts(0).state(), "PREEMPTED");
  EXPECT_LE(bill.attempts(0).wasted_seconds(), stop_seconds) << bill.DebugString();
}

// A routine restart is not a failure: SIGTERM to the server stops its local worker cleanly
// (the attempt ends PREEMPTED with a checkpoint, the worker deregisters) and after the restart
// on the same database that worker is GONE, not LOST, and the job has used no failure.
TEST_F(ServiceEndToEndTest, AServerRestartLeavesNoLostWorkerAndUsesNoAttempt) {
  server_.options().extra_args.insert(
      server_.options().extra_args.end(),
      {"--local-workers", "1", "--work-dir", work_dir_, "--price-per-gpu-hour", "2.5"});
  server_.options().env["TUNELEDGER_TRAIN_MIN_STEP_SECONDS"] = kMinStepSeconds;
  ASSERT_OK(server_.Start());
  const std::string id = Submit("e2e-restart", {"--max-steps", "100000"});
  WaitForJob(
      id, [](const Job& job) { return job.state() == Job::RUNNING && job.progress().step() >= 2; },
      kJobTimeout, "past step 2");
  absl::StatusOr<ExitStatus> stopped = server_.Stop(absl::Seconds(60));
  ASSERT_OK(stopped);
  EXPECT_TRUE(stopped->success()) << stopped->ToString();

  ASSERT_OK(server_.Start(ServerHarness::Port::kSameGrpcPort));
  const Job resumed = WaitForJob(
      id, [](const Job& job) { return job.state() == Job::RUNNING && job.attempts() == 2; },
      kJobTimeout, "running its second attempt");
  EXPECT_EQ(resumed.failed_attempts(), 0);
  EXPECT_EQ(resumed.preempted_attempts(), 1);
  const CommandResult workers = Tunectl({"--output", "json", "workers"});
  EXPECT_THAT(workers.stdout_text, HasSubstr("\"GONE\"")) << workers.ToString();
  EXPECT_THAT(workers.stdout_text, Not(HasSubstr("\"LOST\""))) << workers.ToString();
  const CommandResult cancelled = Tunectl({"cancel", id});
  EXPECT_EQ(cancelled.exit_code, 0) << cancelled.ToString();
}

TEST_F(ServiceEndToEndTest, TrainerFailureFailsTheJobWithItsOwnMessageAndTheWorkerRunsTheNextJob) {
  // A model folder whose weights file is corrupt (a header length far past the end).
  const std::string corrupt = server_.temp_dir() + "/corrupt-model";
  fs::copy(SourcePath("models/tiny-llama"), corrupt, fs::copy_options::recursive);
  {
    std::ofstream weights(corrupt + "/model.safetensors", std::ios::binary | std::ios::trunc);
    weights << std::string("\xff\xff\xff\x00\x00\x00\x00\x00{}", 10);
  }
  ASSERT_OK(server_.Start());
  StartWorker("a");
  const std::string bad = Submit("e2e-corrupt", {}, corrupt);
  Job failed = WaitForFinalState(bad);
  ASSERT_EQ(failed.state(), Job::FAILED) << failed.DebugString();

  // The trainer's own words: run it directly on the attempt's spec and read its error line.
  const std::string attempt_dir = layout::AttemptDir(work_dir_, bad, 1);
  ChildProcessOptions direct;
  direct.argv = {testing::BinaryPath("tuneledger-train"), "--spec", layout::SpecPath(attempt_dir),
                 "--out", server_.temp_dir() + "/direct-run"};
  absl::StatusOr<CompletedProcess> run = ChildProcess::RunToCompletion(direct, absl::Minutes(2));
  ASSERT_OK(run);
  EXPECT_EQ(run->status.code, 1) << run->status.ToString();
  std::string trainer_message;
  for (absl::string_view line : absl::StrSplit(run->stdout_text, '\n', absl::SkipEmpty())) {
    nlohmann::json parsed = nlohmann::json::parse(line.begin(), line.end(), nullptr, false);
    if (parsed.is_object() && parsed.value("type", "") == "error") {
      trainer_message = parsed.value("message", "");
    }
  }
  ASSERT_FALSE(trainer_message.empty()) << "no error line: " << run->stdout_text;
  EXPECT_EQ(failed.message(), trainer_message);
  EXPECT_THAT(failed.message(), HasSubstr("model.safetensors"));

  const std::string failed_worker = failed.worker_id();
  const std::string next = Submit("e2e-after-failure", {"--max-steps", "2"});
  Job succeeded = WaitForFinalState(next);
  EXPECT_EQ(succeeded.state(), Job::SUCCEEDED) << succeeded.DebugString();
  std::string next_worker;
  for (const JobEvent& event : Events(next)) {
    if (event.kind() == JobEvent::STARTED) next_worker = event.worker_id();
  }
  std::string failed_started_worker;
  for (const JobEvent& event : Events(bad)) {
    if (event.kind() == JobEvent::STARTED) failed_started_worker = event.worker_id();
  }
  EXPECT_FALSE(next_worker.empty());
  EXPECT_EQ(next_worker, failed_started_worker) << "not the same worker";
}

// training.early_stop end to end: the trainer ends a job whose eval loss stopped improving
// (SUCCEEDED, reason EARLY_STOPPED, the best evaluation's adapter) and one whose loss diverged
// (FAILED, reason LOSS_DIVERGED), each in its final event; `tunectl pareto` then places both on
// the cost-quality plane from the store, only the succeeded one optimal.
TEST_F(ServiceEndToEndTest, EarlyStopAndDivergenceEndJobsWithTheirReasonsAndParetoPlacesThem) {
  ASSERT_OK(server_.Start());
  StartWorker("a");
  const std::string valid = SourcePath("models/demo/valid.jsonl");
  // Step 0 is the best (no later evaluation is 100 nats better): it stops at the first
  // evaluation after it, step 2.
  const std::string stopped =
      Submit("e2e-early-stop", {"--valid", valid, "--eval-every", "2", "--early-stop-patience", "1",
                                "--early-stop-min-delta", "100", "--label", "sweep=e2e"});
  const std::string diverged =
      Submit("e2e-diverge",
             {"--valid", valid, "--lr", "1e30", "--warmup-steps", "0", "--label", "sweep=e2e"});
  const Job early = WaitForFinalState(stopped);
  EXPECT_EQ(early.state(), Job::SUCCEEDED) << early.DebugString();
  EXPECT_EQ(early.reason(), Job::EARLY_STOPPED) << early.DebugString();
  EXPECT_EQ(early.progress().step(), 2) << early.DebugString();
  EXPECT_TRUE(fs::exists(early.adapter_path() + "/adapter_model.safetensors"));
  EXPECT_EQ(Events(stopped).back().reason(), Job::EARLY_STOPPED);
  const Job failed = WaitForFinalState(diverged);
  EXPECT_EQ(failed.state(), Job::FAILED) << failed.DebugString();
  EXPECT_EQ(failed.reason(), Job::LOSS_DIVERGED) << failed.DebugString();
  EXPECT_THAT(failed.message(), HasSubstr("diverged at step"));
  EXPECT_EQ(Events(diverged).back().reason(), Job::LOSS_DIVERGED);

  const CommandResult pareto = Tunectl({"--output", "json", "pareto", "--label", "sweep=e2e"});
  ASSERT_EQ(pareto.exit_code, 0) << pareto.ToString();
  const auto front = ParseProtoJson<tuneledger::v1::ParetoFront>(pareto.stdout_text);
  std::map<std::string, tuneledger::v1::ParetoPoint> points;
  for (const tuneledger::v1::ParetoPoint& point : front.points()) points[point.job_id()] = point;
  ASSERT_EQ(points.size(), 2u) << pareto.stdout_text;
  EXPECT_TRUE(points[stopped].pareto_optimal()) << pareto.stdout_text;
  EXPECT_FALSE(points[diverged].pareto_optimal()) << pareto.stdout_text;
  EXPECT_GT(points[stopped].total_usd(), 0);
  EXPECT_DOUBLE_EQ(points[stopped].eval_loss(), early.progress().eval_loss());
}

// Data selection through the service: the trainer scores every training example with the base
// model before its first step (progress phase SCORING, stored in the history), keeps half, and
// the bill carries the scoring pass as its own line, on the server's clock, inside the compute.
TEST_F(ServiceEndToEndTest, DataSelectionScoringIsAPhaseOfProgressAndALineOfTheBill) {
  ASSERT_OK(server_.Start());
  StartWorker("a");
  // 96 examples: scoring batches are paced like steps here (kMinStepSeconds), so the whole demo
  // set would take minutes.
  const std::vector<std::string> demo =
      absl::StrSplit(ReadText(SourcePath("models/demo/train.jsonl")), '\n', absl::SkipEmpty());
  ASSERT_GE(demo.size(), 96u);
  const std::string train = absl::StrCat(server_.temp_dir(), "/select-train.jsonl");
  std::ofstream(train) << absl::StrJoin(demo.begin(), demo.begin() + 96, "\n") << "\n";
  const std::string id = Submit(
      "e2e-select", {"--train", train, "--select-data", "entropy", "--keep-fraction", "0.5"});
  const Job job = WaitForFinalState(id);
  ASSERT_EQ(job.state(), Job::SUCCEEDED) << job.DebugString();

  const auto history = ParseProtoJson<tuneledger::v1::ProgressHistory>(
      Tunectl({"--output", "json", "history", id}).stdout_text);
  int64_t scored = 0;
  for (const tuneledger::v1::Progress& point : history.points()) {
    if (point.phase() == tuneledger::v1::Progress::SCORING) {
      scored = std::max(scored, point.scored_examples());
    }
  }
  const std::string selection_file =
      layout::DataSelectionPath(layout::AttemptDir(work_dir_, id, 1));
  const std::vector<std::string> lines =
      absl::StrSplit(ReadText(selection_file), '\n', absl::SkipEmpty());
  const int64_t kept = std::count_if(lines.begin(), lines.end(), [](const std::string& line) {
    return nlohmann::json::parse(line).at("kept").get<bool>();
  });
  EXPECT_EQ(lines.size(), 96u);
  EXPECT_EQ(scored, 96) << "the last scoring report covers every example";
  EXPECT_EQ(kept, 48);

  const auto bill = ParseProtoJson<tuneledger::v1::CostReport>(
      Tunectl({"--output", "json", "cost", id}).stdout_text);
  ASSERT_EQ(bill.attempts_size(), 1) << bill.DebugString();
  const tuneledger::v1::AttemptCost& attempt = bill.attempts(0);
  EXPECT_GT(attempt.scoring_seconds(), 0) << bill.DebugString();
  EXPECT_LT(attempt.scoring_seconds(), attempt.seconds());
  EXPECT_NEAR(attempt.scoring_usd(),
              attempt.price_per_gpu_hour() * attempt.gpus() * attempt.scoring_seconds() / 3600,
              1e-12);
  EXPECT_DOUBLE_EQ(bill.scoring_usd(), attempt.scoring_usd());
  EXPECT_THAT(ReadText(layout::CostCardPath(job.adapter_path())),
              HasSubstr("of which data-selection scoring"));
}

}  // namespace
}  // namespace tuneledger
