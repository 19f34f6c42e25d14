#include "worker/agent/attempt_runner.h"

#include <google/protobuf/util/json_util.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/bounded_text.h"
#include "base/child_process.h"
#include "base/grpc_status.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "base/work_dir_layout.h"
#include "worker/agent/backoff.h"
#include "worker/agent/progress_stream.h"
#include "worker/agent/trainer_output_parser.h"

namespace tuneledger::worker {
namespace {

// Writes `contents` to `path` whole or not at all (a temporary file renamed over it): a reader
// never sees half a file. The temporary name is this write's own (a random tag of the process,
// a count of its writes): the workers of a gang, on one machine or several sharing the work
// volume, write the same attempt's spec.json at the same time.
absl::Status WriteFileAtomically(const std::string& path, const std::string& contents) {
  static const uint64_t process_tag =
      (uint64_t{std::random_device{}()} << 32) ^ std::random_device{}();
  static std::atomic<uint64_t> writes{0};
  const std::string temp_path = absl::StrCat(path, ".tmp.", absl::Hex(process_tag), ".",
                                             writes.fetch_add(1, std::memory_order_relaxed));
  {
    std::ofstream out(temp_path, std::ios::trunc | std::ios::binary);
    out << contents;
    out.close();
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", temp_path));
  }
  std::error_code error;
  std::filesystem::rename(temp_path, path, error);
  if (error) {
    std::error_code ignored;
    std::filesystem::remove(temp_path, ignored);
    return absl::InternalError(absl::StrCat("cannot rename ", temp_path, ": ", error.message()));
  }
  return absl::OkStatus();
}

using ::tuneledger::v1::FinishAttemptRequest;
using ::tuneledger::v1::Lease;
using ::tuneledger::v1::ProgressReport;
using ::tuneledger::v1::TrainerUpdate;
using ::tuneledger::v1::WorkerCommand;
using SteadyClock = std::chrono::steady_clock;

// tuneledger-train's exit code after SIGTERM/SIGINT once its checkpoint is written
// (PROGRESS_PROTOCOL.md).
constexpr int kTrainerStoppedExitCode = 75;

absl::Duration ToDuration(SteadyClock::duration d) {
  return absl::FromChrono(std::chrono::duration_cast<std::chrono::nanoseconds>(d));
}

SteadyClock::duration ToSteady(absl::Duration d) {
  return std::chrono::duration_cast<SteadyClock::duration>(absl::ToChronoNanoseconds(d));
}

int PollTimeoutMillis(SteadyClock::time_point until) {
  auto left = std::chrono::ceil<std::chrono::milliseconds>(until - SteadyClock::now()).count();
  return static_cast<int>(std::clamp<int64_t>(left, 0, 60'000));
}

// The last lines of train.log, for a FAILED message when the trainer died without an error
// line (a segfault or the OOM killer leaves only its log).
std::string TrainLogTail(const std::string& path, int max_lines, size_t max_chars) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  in.seekg(0, std::ios::end);
  std::streamoff size = in.tellg();
  std::streamoff start = std::max<std::streamoff>(0, size - 8192);
  in.seekg(start);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> lines = absl::StrSplit(text, '\n', absl::SkipWhitespace());
  if (start > 0 && !lines.empty()) lines.erase(lines.begin());  // likely a partial line
  if (static_cast<int>(lines.size()) > max_lines) {
    lines.erase(lines.begin(), lines.end() - max_lines);
  }
  std::string tail = absl::StrJoin(lines, " | ");
  if (tail.size() > max_chars) tail = "..." + tail.substr(tail.size() - max_chars);
  return tail;
}

bool IsRetryable(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::DEADLINE_EXCEEDED ||
         code == grpc::StatusCode::RESOURCE_EXHAUSTED || code == grpc::StatusCode::ABORTED;
}

}  // namespace

struct AttemptRunner::TrainerRun {
  absl::Status start_error;  // the trainer never ran
  ExitStatus exit;
  bool done = false;
  std::string adapter_dir;
  std::string error_message;  // from an `error` line
  // Why the trainer ended, as it said (`done` early_stopped, `error` reason): EARLY_STOPPED,
  // LOSS_DIVERGED or unset.
  tuneledger::v1::Job::Reason reason = tuneledger::v1::Job::REASON_UNSPECIFIED;
  bool stopped = false;    // a `stopped` line: it checkpointed after a signal
  bool rank_lost = false;  // an `error` line of reason rank_lost (data parallel)
  std::string last_checkpoint;
  std::optional<TrainerUpdate> last_progress;
  std::optional<TrainerUpdate> done_update;
};

double AccruedUsd(const AgentOptions& options, absl::Duration lease) {
  return AttemptCostUsd(AttemptPricing{options.price_per_gpu_hour, options.gpus(), options.spot},
                        lease);
}

AttemptRunner::AttemptRunner(const AgentOptions& options,
                             tuneledger::v1::WorkerService::StubInterface* stub,
                             std::string worker_id, Lease lease,
                             absl::Duration default_report_interval,
                             SteadyClock::time_point lease_start)
    : options_(options),
      stub_(stub),
      worker_id_(std::move(worker_id)),
      lease_(std::move(lease)),
      report_interval_(lease_.report_interval_seconds() > 0
                           ? absl::Seconds(lease_.report_interval_seconds())
                           : default_report_interval),
      lease_start_(lease_start),
      wake_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

AttemptRunner::~AttemptRunner() {
  if (wake_fd_ >= 0) close(wake_fd_);
}

void AttemptRunner::Cancel(std::string message) {
  RequestStop(StopKind::kCancel, std::move(message));
}

void AttemptRunner::Preempt() {
  RequestStop(StopKind::kPreempt, "worker is shutting down (preemption notice)");
}

void AttemptRunner::RequestStop(StopKind kind, std::string message) {
  {
    absl::MutexLock lock(&mu_);
    // A cancel overrides a preemption (the user's intent is final); nothing overrides a cancel.
    if (stop_ == StopKind::kCancel || stop_ == kind) return;
    stop_ = kind;
    stop_message_ = std::move(message);
  }
  TL_LOG(INFO) << "job " << lease_.job_id() << " attempt " << lease_.attempt() << ": "
               << (kind == StopKind::kCancel ? "cancel" : "preempt") << " requested";
  uint64_t one = 1;
  ssize_t ignored = write(wake_fd_, &one, sizeof(one));
  (void)ignored;
}

absl::Duration AttemptRunner::LeaseTime() const {
  return ToDuration(SteadyClock::now() - lease_start_);
}

ProgressReport AttemptRunner::Report(const TrainerUpdate& update) const {
  ProgressReport report;
  report.set_worker_id(worker_id_);
  report.set_lease_token(lease_.lease_token());
  report.set_job_id(lease_.job_id());
  report.set_attempt(lease_.attempt());
  absl::Duration lease_time = LeaseTime();
  report.set_lease_seconds(absl::ToDoubleSeconds(lease_time));
  report.set_accrued_usd(AccruedUsd(options_, lease_time));
  *report.mutable_update() = update;
  return report;
}

absl::Status AttemptRunner::PrepareAttemptDir() {
  if (!layout::IsSafePathComponent(lease_.job_id())) {
    return absl::InvalidArgumentError(
        absl::StrCat("job id \"", lease_.job_id(), "\" cannot be used as a folder name"));
  }
  tuneledger::v1::JobSpec spec = lease_.spec();
  for (auto [field, path] : {std::pair{"model_path", spec.mutable_model_path()},
                             std::pair{"train_path", spec.mutable_train_path()},
                             std::pair{"valid_path", spec.mutable_valid_path()}}) {
    if (path->empty()) continue;
    // Any tenant's root: the server checked the tenant's own; this worker only makes sure
    // that nothing outside what its operator shares reaches the trainer.
    const std::optional<std::string> resolved =
        options_.data_roots.Resolve(/*tenant=*/"", *path, /*any_tenant=*/true);
    if (!resolved) {
      return absl::PermissionDeniedError(
          absl::StrCat("spec.", field, " is not inside this worker's data roots (--data-root)"));
    }
    *path = *resolved;
  }
  if (!lease_.resume_checkpoint().empty()) {
    // A checkpoint of this job, in this work dir: nothing else is a trainer's to resume.
    std::string error;
    const std::optional<DataRoots> job_dir =
        DataRoots::Parse({layout::JobDir(options_.work_dir, lease_.job_id())}, &error);
    if (!job_dir || !job_dir->Resolve("", lease_.resume_checkpoint())) {
      return absl::PermissionDeniedError(
          absl::StrCat("resume_checkpoint is not inside this job's folder under --work-dir ",
                       options_.work_dir));
    }
  }
  attempt_dir_ = layout::AttemptDir(options_.work_dir, lease_.job_id(), lease_.attempt());
  std::error_code error;
  std::filesystem::create_directories(attempt_dir_, error);
  if (error) {
    return absl::InternalError(absl::StrCat("cannot create ", attempt_dir_, ": ", error.message()));
  }

  google::protobuf::util::JsonPrintOptions json_options;
  json_options.preserve_proto_field_names = true;
  json_options.add_whitespace = true;
  std::string json;
  auto printed = google::protobuf::util::MessageToJsonString(spec, &json, json_options);
  if (!printed.ok()) {
    return absl::InternalError(absl::StrCat("cannot print the job spec: ", printed.ToString()));
  }
  return WriteFileAtomically(layout::SpecPath(attempt_dir_), json + "\n");
}

// The trainer runs in named steps: start it, relay its lines (and the cost clock) until it
// closes stdout, escalating a stop request from SIGTERM to SIGKILL, then reap it.
AttemptRunner::TrainerRun AttemptRunner::RunTrainer(ProgressStream& stream) {
  TrainerRun run;
  absl::StatusOr<std::unique_ptr<ChildProcess>> trainer = StartTrainer();
  if (!trainer.ok()) {
    run.start_error = trainer.status();
    return run;
  }
  stream.Send(Report(CostOnlyUpdate()));  // the server learns at once that the attempt is alive
  const absl::Duration wait_for = RelayUntilStdoutCloses(**trainer, stream, run);
  run.exit = ReapTrainer(**trainer, wait_for);
  // The other ranks end with rank 0 (done, stopped with it, or lost it).
  ReapPeers(std::max(wait_for, absl::Seconds(30)));
  return run;
}

TrainerUpdate AttemptRunner::CostOnlyUpdate() {
  TrainerUpdate cost_only;
  cost_only.set_kind(TrainerUpdate::COST);
  return cost_only;
}

ChildProcessOptions AttemptRunner::TrainerCommand() const {
  for (size_t i = 0; i < static_cast<size_t>(lease_.ranks_size()); ++i) {
    if (lease_.ranks(static_cast<int>(i)) == 0) return RankCommand(0, i);
  }
  return RankCommand(0, 0);  // no ranks: the whole job in one process
}

bool AttemptRunner::RunsRankZero() const {
  return lease_.ranks().empty() ||
         std::find(lease_.ranks().begin(), lease_.ranks().end(), 0) != lease_.ranks().end();
}

ChildProcessOptions AttemptRunner::RankCommand(int rank, size_t local_index) const {
  ChildProcessOptions command;
  command.argv = {options_.trainer_path, "--spec", layout::SpecPath(attempt_dir_), "--out",
                  attempt_dir_};
  if (!lease_.resume_checkpoint().empty()) {
    command.argv.push_back("--resume-from");
    command.argv.push_back(lease_.resume_checkpoint());
  }
  const bool data_parallel = !lease_.ranks().empty();
  if (data_parallel) {
    for (std::string flag :
         {absl::StrCat("--rank=", rank), absl::StrCat("--world-size=", lease_.world_size()),
          absl::StrCat("--rendezvous=", lease_.rendezvous())}) {
      command.argv.push_back(std::move(flag));
    }
    if (options_.gpu_indices.empty()) {
      // A CPU agent's ranks share its cores.
      const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
      command.argv.push_back(absl::StrCat(
          "--threads=", std::max<size_t>(1, cores / static_cast<size_t>(lease_.ranks_size()))));
    }
  }
  // A CPU agent hides any GPU from its trainer; a GPU agent shows it exactly its devices (one
  // per data-parallel rank).
  command.env["CUDA_VISIBLE_DEVICES"] = data_parallel && local_index < options_.gpu_indices.size()
                                            ? std::to_string(options_.gpu_indices[local_index])
                                            : absl::StrJoin(options_.gpu_indices, ",");
  if (rank == 0) {
    command.stdout_mode = StdioMode::kPipe;
    command.stderr_mode = StdioMode::kFile;
    command.stderr_path = layout::TrainLogPath(attempt_dir_);
  } else {
    command.stdout_mode = StdioMode::kNull;  // ranks other than 0 print no progress lines
    command.stderr_mode = StdioMode::kFile;
    command.stderr_path = layout::RankLogPath(attempt_dir_, rank);
  }
  // If this agent is SIGKILLed, its trainer must not train on as an orphan: the job is
  // requeued elsewhere. Run() is called from the agent's long-lived main loop thread.
  command.parent_death_signal = SIGKILL;
  return command;
}

absl::Status AttemptRunner::StartPeers() {
  for (int i = 0; i < lease_.ranks_size(); ++i) {
    const int rank = lease_.ranks(i);
    if (rank == 0) continue;
    TL_ASSIGN_OR_RETURN(std::unique_ptr<ChildProcess> peer,
                        ChildProcess::Start(RankCommand(rank, static_cast<size_t>(i))));
    TL_LOG(INFO) << "job " << lease_.job_id() << " attempt " << lease_.attempt()
                 << ": started rank " << rank << " of " << lease_.world_size() << " pid "
                 << peer->pid() << " (" << lease_.rendezvous() << ")";
    peers_.push_back(std::move(peer));
  }
  return absl::OkStatus();
}

void AttemptRunner::SignalRanks(ChildProcess* trainer, int sig) {
  if (trainer != nullptr) trainer->Signal(sig).IgnoreError();
  for (const std::unique_ptr<ChildProcess>& peer : peers_) peer->Signal(sig).IgnoreError();
}

void AttemptRunner::ReapPeers(absl::Duration wait_for) {
  for (const std::unique_ptr<ChildProcess>& peer : peers_) {
    absl::StatusOr<ExitStatus> exit = peer->Wait(wait_for);
    const ExitStatus status = exit.ok() ? *exit : peer->Terminate(options_.cancel_grace);
    TL_LOG(INFO) << "job " << lease_.job_id() << ": rank pid " << peer->pid() << " ended, "
                 << status.ToString();
  }
}

FinishAttemptRequest AttemptRunner::RunGangMember() {
  FinishAttemptRequest request;
  request.set_worker_id(worker_id_);
  request.set_job_id(lease_.job_id());
  request.set_attempt(lease_.attempt());
  absl::Status started = PrepareAttemptDir();
  {
    absl::MutexLock lock(&mu_);
    if (started.ok() && stop_ != StopKind::kNone) started = absl::CancelledError("stopped");
  }
  if (started.ok()) started = StartPeers();
  if (!started.ok()) {
    TL_LOG(ERROR) << "job " << lease_.job_id() << ": cannot start its ranks: " << started;
    SignalRanks(nullptr, SIGKILL);
    ReapPeers(absl::Seconds(5));
    request.set_outcome(FinishAttemptRequest::FAILED);
    request.set_message(std::string(started.message()));
    return request;
  }
  // Until every rank exits: rank 0 (elsewhere) ends them all, or a stop request here does.
  std::optional<SteadyClock::time_point> kill_at;
  bool killed = false;
  std::vector<std::optional<ExitStatus>> exits(peers_.size());
  while (std::any_of(exits.begin(), exits.end(), [](const auto& e) { return !e.has_value(); })) {
    StopKind stop;
    {
      absl::MutexLock lock(&mu_);
      stop = stop_;
    }
    if (stop != StopKind::kNone && !kill_at.has_value()) {
      SignalRanks(nullptr, SIGTERM);
      kill_at = SteadyClock::now() + ToSteady(stop == StopKind::kCancel ? options_.cancel_grace
                                                                        : options_.preempt_grace);
    }
    if (kill_at.has_value() && !killed && SteadyClock::now() >= *kill_at) {
      SignalRanks(nullptr, SIGKILL);
      killed = true;
    }
    pollfd wake = {wake_fd_, POLLIN, 0};
    if (poll(&wake, 1, 250) > 0) {
      uint64_t count;
      ssize_t ignored = read(wake_fd_, &count, sizeof(count));
      (void)ignored;
    }
    for (size_t i = 0; i < peers_.size(); ++i) {
      if (!exits[i].has_value()) exits[i] = peers_[i]->TryWait();
    }
  }
  const bool all_ok =
      std::all_of(exits.begin(), exits.end(), [](const auto& e) { return e->success(); });
  request.set_outcome(all_ok ? FinishAttemptRequest::SUCCEEDED : FinishAttemptRequest::FAILED);
  for (size_t i = 0; i < peers_.size(); ++i) {
    TL_LOG(INFO) << "job " << lease_.job_id() << " attempt " << lease_.attempt() << ": rank pid "
                 << peers_[i]->pid() << " ended, " << exits[i]->ToString();
  }
  return request;
}

absl::StatusOr<std::unique_ptr<ChildProcess>> AttemptRunner::StartTrainer() {
  {
    absl::MutexLock lock(&mu_);
    if (stop_ != StopKind::kNone) return absl::CancelledError("stopped before the trainer started");
  }
  TL_ASSIGN_OR_RETURN(std::unique_ptr<ChildProcess> trainer, ChildProcess::Start(TrainerCommand()));
  if (absl::Status peers = StartPeers(); !peers.ok()) {
    SignalRanks(trainer.get(), SIGKILL);
    trainer->Wait(absl::Seconds(5)).IgnoreError();
    ReapPeers(absl::Seconds(5));
    return peers;
  }
  TL_LOG(INFO) << "job " << lease_.job_id() << " attempt " << lease_.attempt()
               << ": started tuneledger-train pid " << trainer->pid() << " in " << attempt_dir_
               << (lease_.resume_checkpoint().empty()
                       ? std::string()
                       : " resuming from " + lease_.resume_checkpoint());
  return trainer;
}

void AttemptRunner::HandleTrainerLine(const std::string& line, ProgressStream& stream,
                                      TrainerRun& run) {
  if (line.empty()) return;
  absl::StatusOr<TrainerLine> parsed = ParseTrainerLine(line);
  if (!parsed.ok()) {
    TL_LOG(WARNING) << "job " << lease_.job_id()
                    << ": ignoring trainer output: " << parsed.status().message();
    return;
  }
  switch (parsed->type) {
    case TrainerLine::Type::kStarted:
      TL_LOG(INFO) << "job " << lease_.job_id() << ": trainer started at step "
                   << parsed->start_step << " of " << parsed->total_steps;
      break;
    case TrainerLine::Type::kScoring:
      // Data selection before the first step: the server bills it as its own phase.
      stream.Send(Report(parsed->update));
      break;
    case TrainerLine::Type::kProgress:
      run.last_progress = parsed->update;
      stream.Send(Report(parsed->update));
      break;
    case TrainerLine::Type::kEval:
      stream.Send(Report(parsed->update));
      break;
    case TrainerLine::Type::kCheckpoint:
      run.last_checkpoint = parsed->checkpoint_path;
      stream.Send(Report(parsed->update));
      break;
    case TrainerLine::Type::kStopped:
      run.stopped = true;
      // No path: stopped during data selection scoring, before any checkpoint.
      if (!parsed->checkpoint_path.empty() && parsed->checkpoint_path != run.last_checkpoint) {
        run.last_checkpoint = parsed->checkpoint_path;
        stream.Send(Report(parsed->update));
      }
      break;
    case TrainerLine::Type::kDone:
      run.done = true;
      run.adapter_dir = parsed->adapter_dir;
      run.done_update = parsed->update;
      run.reason = parsed->reason;
      break;
    case TrainerLine::Type::kError:
      run.error_message = parsed->message;
      run.reason = parsed->reason;
      run.rank_lost = parsed->rank_lost;
      break;
    case TrainerLine::Type::kUnknown:
      TL_LOG(DEBUG) << "job " << lease_.job_id() << ": trainer line of unknown type "
                    << parsed->type_name;
      break;
  }
}

absl::Duration AttemptRunner::RelayUntilStdoutCloses(ChildProcess& trainer, ProgressStream& stream,
                                                     TrainerRun& run) {
  LineSplitter splitter;
  const SteadyClock::duration report_every = ToSteady(report_interval_);
  SteadyClock::time_point next_report = SteadyClock::now() + report_every;
  std::optional<SteadyClock::time_point> kill_at;  // SIGKILL then, once SIGTERM was sent
  bool killed = false;
  bool eof = false;
  while (!eof) {
    StopKind stop;
    {
      absl::MutexLock lock(&mu_);
      stop = stop_;
    }
    if (stop != StopKind::kNone) {
      SteadyClock::time_point limit =
          SteadyClock::now() +
          ToSteady(stop == StopKind::kCancel ? options_.cancel_grace : options_.preempt_grace);
      if (!kill_at.has_value()) {
        SignalRanks(&trainer, SIGTERM);
        kill_at = limit;
      } else {
        kill_at = std::min(*kill_at, limit);  // a cancel after a preemption shortens the grace
      }
    }
    if (kill_at.has_value() && !killed && SteadyClock::now() >= *kill_at) {
      TL_LOG(WARNING) << "job " << lease_.job_id() << ": trainer still running after the grace "
                      << "period; SIGKILL";
      SignalRanks(&trainer, SIGKILL);
      killed = true;
    }

    SteadyClock::time_point wake_at = next_report;
    if (kill_at.has_value() && !killed) wake_at = std::min(wake_at, *kill_at);
    pollfd fds[2] = {{trainer.stdout_fd(), POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    int ready = poll(fds, 2, PollTimeoutMillis(wake_at));
    if (ready < 0 && errno != EINTR) {
      TL_LOG(ERROR) << "poll: " << strerror(errno);
      SignalRanks(&trainer, SIGKILL);
      break;
    }
    if (fds[1].revents != 0) {
      uint64_t count;
      ssize_t ignored = read(wake_fd_, &count, sizeof(count));
      (void)ignored;
    }
    if (fds[0].revents != 0) {
      char buffer[16384];
      ssize_t n = read(trainer.stdout_fd(), buffer, sizeof(buffer));
      if (n > 0) {
        for (const std::string& line : splitter.Feed(absl::string_view(buffer, n))) {
          HandleTrainerLine(line, stream, run);
        }
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        eof = true;
        if (std::optional<std::string> last = splitter.Finish()) {
          HandleTrainerLine(*last, stream, run);
        }
      }
    }
    if (SteadyClock::now() >= next_report) {
      stream.Send(Report(CostOnlyUpdate()));
      next_report = SteadyClock::now() + report_every;
    }
  }
  // stdout is closed: the trainer is exiting (or has closed it and hangs: then it is stopped).
  if (kill_at.has_value() && !killed) {
    return std::max(ToDuration(*kill_at - SteadyClock::now()), absl::ZeroDuration());
  }
  return absl::Seconds(30);
}

ExitStatus AttemptRunner::ReapTrainer(ChildProcess& trainer, absl::Duration wait_for) {
  absl::StatusOr<ExitStatus> exit = trainer.Wait(wait_for);
  const ExitStatus status = exit.ok() ? *exit : trainer.Terminate(options_.cancel_grace);
  TL_LOG(INFO) << "job " << lease_.job_id() << " attempt " << lease_.attempt()
               << ": tuneledger-train ended, " << status.ToString();
  return status;
}

FinishAttemptRequest AttemptRunner::BuildFinish(const TrainerRun& run) {
  FinishAttemptRequest request;
  request.set_worker_id(worker_id_);
  request.set_lease_token(lease_.lease_token());
  request.set_job_id(lease_.job_id());
  request.set_attempt(lease_.attempt());
  absl::Duration lease_time = LeaseTime();
  request.set_lease_seconds(absl::ToDoubleSeconds(lease_time));
  request.set_accrued_usd(AccruedUsd(options_, lease_time));
  if (run.last_progress.has_value()) {
    *request.mutable_final_update() = *run.last_progress;
  } else if (run.done_update.has_value()) {
    *request.mutable_final_update() = *run.done_update;
  }
  // The newest checkpoint this job has: this attempt's, else the one it resumed from.
  request.set_last_checkpoint(run.last_checkpoint.empty() ? lease_.resume_checkpoint()
                                                          : run.last_checkpoint);

  StopKind stop;
  std::string stop_message;
  {
    absl::MutexLock lock(&mu_);
    stop = stop_;
    stop_message = stop_message_;
  }
  if (stop == StopKind::kCancel) {
    request.set_outcome(FinishAttemptRequest::CANCELLED);
    request.set_message(stop_message);
  } else if (run.start_error.ok() && run.done && run.exit.success()) {
    request.set_outcome(FinishAttemptRequest::SUCCEEDED);
    request.set_adapter_path(run.adapter_dir);
    if (run.reason == tuneledger::v1::Job::EARLY_STOPPED) request.set_reason(run.reason);
  } else if (stop == StopKind::kPreempt) {
    request.set_outcome(FinishAttemptRequest::PREEMPTED);
    request.set_message(run.stopped ? stop_message
                                    : absl::StrCat(stop_message,
                                                   "; the trainer wrote no final "
                                                   "checkpoint (",
                                                   run.exit.ToString(), ")"));
  } else if (!run.start_error.ok()) {
    request.set_outcome(FinishAttemptRequest::FAILED);
    request.set_message(absl::StrCat("cannot start tuneledger-train: ", run.start_error.message()));
  } else if (run.rank_lost) {
    // The gang lost a rank (its worker died, or the rank crashed): resume from the last
    // checkpoint like any preemption.
    request.set_outcome(FinishAttemptRequest::PREEMPTED);
    request.set_message(BoundedText(run.error_message, kMaxAttemptMessageBytes));
  } else if (!run.error_message.empty()) {
    request.set_outcome(FinishAttemptRequest::FAILED);
    // The trainer's own words, bounded (a file's contents never reach them: trainer_error.h).
    request.set_message(BoundedText(run.error_message, kMaxAttemptMessageBytes));
    if (run.reason == tuneledger::v1::Job::LOSS_DIVERGED) request.set_reason(run.reason);
  } else if (run.exit.exited && run.exit.code == kTrainerStoppedExitCode) {
    // Someone else (not this agent) sent the trainer SIGTERM: it checkpointed; resume later.
    request.set_outcome(FinishAttemptRequest::PREEMPTED);
    request.set_message("tuneledger-train was stopped by a signal after checkpointing");
  } else {
    request.set_outcome(FinishAttemptRequest::FAILED);
    std::string tail = TrainLogTail(layout::TrainLogPath(attempt_dir_), 5, 1500);
    request.set_message(
        absl::StrCat("tuneledger-train ", run.exit.ToString(),
                     run.done ? " after its done line" : " without reporting an error",
                     tail.empty() ? std::string() : absl::StrCat("; train.log ends: ", tail)));
  }
  return request;
}

void AttemptRunner::SendFinish(const FinishAttemptRequest& request) {
  Backoff backoff(absl::Milliseconds(250), absl::Seconds(5));
  const absl::Time give_up = absl::Now() + options_.finish_retry_window;
  while (true) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + options_.rpc_timeout));
    tuneledger::v1::FinishAttemptResponse response;
    grpc::Status status = stub_->FinishAttempt(&context, request, &response);
    if (status.ok()) {
      TL_LOG(INFO) << "job " << request.job_id() << " attempt " << request.attempt()
                   << " finished: " << FinishAttemptRequest::Outcome_Name(request.outcome())
                   << (request.message().empty() ? "" : " (" + request.message() + ")");
      WriteCostCard(request, response);
      return;
    }
    if (!IsRetryable(status.error_code()) || absl::Now() >= give_up) {
      TL_LOG(ERROR) << "FinishAttempt for job " << request.job_id() << " attempt "
                    << request.attempt() << " refused or unreachable: " << FromGrpcStatus(status);
      return;
    }
    absl::SleepFor(std::min(backoff.Next(), give_up - absl::Now()));
  }
}

void AttemptRunner::WriteCostCard(const FinishAttemptRequest& request,
                                  const tuneledger::v1::FinishAttemptResponse& response) {
  if (request.outcome() != FinishAttemptRequest::SUCCEEDED || request.adapter_path().empty() ||
      response.cost_card_markdown().empty()) {
    return;
  }
  const std::string path = layout::CostCardPath(request.adapter_path());
  // The job has succeeded whatever happens here: a card that cannot be written is logged, and
  // `tunectl cost ID --card` prints the same card from the server.
  if (absl::Status written = WriteFileAtomically(path, response.cost_card_markdown());
      !written.ok()) {
    TL_LOG(WARNING) << "job " << request.job_id() << ": no cost card: " << written;
    return;
  }
  TL_LOG(INFO) << "job " << request.job_id() << ": cost card written to " << path;
}

FinishAttemptRequest AttemptRunner::Run() {
  if (!RunsRankZero()) return RunGangMember();
  TrainerRun run;
  if (absl::Status prepared = PrepareAttemptDir(); !prepared.ok()) {
    run.start_error = prepared;
  } else {
    ProgressStream stream(
        stub_,
        [this](const WorkerCommand& command) {
          if (command.kind() != WorkerCommand::CANCEL) return;
          if (!command.job_id().empty() && command.job_id() != lease_.job_id()) return;
          Cancel(command.message().empty()
                     ? absl::StrCat("cancelled by the server (",
                                    tuneledger::v1::Job::Reason_Name(command.reason()), ")")
                     : command.message());
        },
        [this](const grpc::Status& status) {
          Cancel(absl::StrCat("lease revoked by the server: ", status.error_message()));
        });
    run = RunTrainer(stream);
    stream.Close();
  }
  FinishAttemptRequest request = BuildFinish(run);
  SendFinish(request);
  return request;
}

}  // namespace tuneledger::worker
