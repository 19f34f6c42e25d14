#include "server/local_workers.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "base/child_process.h"
#include "base/executable_dir.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "base/work_dir_layout.h"
#include "base/worker_token_env.h"

namespace tuneledger {
namespace {

// A worker that dies is restarted after a delay that doubles up to kMaxRestartDelay, and goes
// back to kFirstRestartDelay once a worker has stayed up for kHealthyRun.
constexpr absl::Duration kFirstRestartDelay = absl::Seconds(1);
constexpr absl::Duration kMaxRestartDelay = absl::Seconds(30);
constexpr absl::Duration kHealthyRun = absl::Seconds(60);
// How often the supervisor looks for workers that died.
constexpr absl::Duration kCheckEvery = absl::Milliseconds(200);

}  // namespace

struct LocalWorkers::Impl {
  // One supervised worker. Touched only by the thread that owns the workers: the caller of
  // Start() until the supervisor thread starts, then only the supervisor thread.
  struct Slot {
    std::string name;  // local-<i>: its label and its log folder
    int index = 0;     // i
    std::unique_ptr<ChildProcess> process;
    absl::Time started_at;
    absl::Time restart_at;
    absl::Duration next_delay = kFirstRestartDelay;
  };

  LocalWorkersOptions options;
  std::vector<Slot> slots;
  std::thread supervisor;

  absl::Mutex mu;  // guards the stop request
  bool stopping ABSL_GUARDED_BY(mu) = false;
  absl::Duration grace ABSL_GUARDED_BY(mu) = absl::Seconds(20);

  absl::Status Launch(Slot& slot);
  void Supervise();
  void StopAll(absl::Duration grace);
};

absl::Status LocalWorkers::Impl::Launch(Slot& slot) {
  const std::string log_dir = layout::LocalWorkerDir(options.work_dir, slot.name);
  std::error_code error;
  std::filesystem::create_directories(log_dir, error);
  if (error) {
    return absl::InternalError(
        absl::StrCat("local workers: cannot create ", log_dir, ": ", error.message()));
  }
  ChildProcessOptions child;
  child.argv = {options.worker_binary,
                "--server",
                options.server_address,
                "--work-dir",
                options.work_dir,
                "--price-per-gpu-hour",
                absl::StrCat(options.price_per_gpu_hour),
                "--name",
                slot.name};
  if (options.spot) child.argv.push_back("--spot");
  child.argv.push_back("--rendezvous-host=127.0.0.1");
  child.argv.push_back(
      absl::StrCat("--rendezvous-port-base=", options.rendezvous_port_base + slot.index));
  for (const std::string& root : options.data_roots) {
    child.argv.push_back("--data-root");
    child.argv.push_back(root);
  }
  if (!options.worker_token.empty()) child.env[kWorkerTokenEnv] = options.worker_token;
  child.stdout_mode = StdioMode::kFile;
  child.stdout_path = layout::LocalWorkerLogPath(options.work_dir, slot.name);
  child.stderr_mode = StdioMode::kFile;
  child.stderr_path = child.stdout_path;
  // If the server dies without stopping them, its workers preempt their attempts and exit.
  // Tied to the launching thread: Start()'s caller (which owns this object) for the first
  // launch, the supervisor thread (which stops every worker before it returns) for restarts.
  child.parent_death_signal = SIGTERM;
  TL_ASSIGN_OR_RETURN(slot.process, ChildProcess::Start(child));
  slot.started_at = absl::Now();
  TL_LOG(INFO) << "local worker " << slot.name << " started, pid " << slot.process->pid()
               << ", log " << child.stdout_path;
  return absl::OkStatus();
}

void LocalWorkers::Impl::Supervise() {
  while (true) {
    absl::Time wake_at = absl::Now() + kCheckEvery;
    for (Slot& slot : slots) {
      if (slot.process != nullptr) {
        std::optional<ExitStatus> ended = slot.process->TryWait();
        if (!ended.has_value()) continue;
        if (absl::Now() - slot.started_at >= kHealthyRun) slot.next_delay = kFirstRestartDelay;
        slot.restart_at = absl::Now() + slot.next_delay;
        TL_LOG(WARNING) << "local worker " << slot.name << " ended (" << ended->ToString()
                        << "); restarting in " << absl::FormatDuration(slot.next_delay);
        slot.next_delay = std::min(slot.next_delay * 2, kMaxRestartDelay);
        slot.process.reset();
      }
      if (slot.process == nullptr && absl::Now() >= slot.restart_at) {
        if (absl::Status launched = Launch(slot); !launched.ok()) {
          TL_LOG(ERROR) << "local worker " << slot.name << ": " << launched;
          slot.restart_at = absl::Now() + slot.next_delay;
          slot.next_delay = std::min(slot.next_delay * 2, kMaxRestartDelay);
        }
      }
      if (slot.process == nullptr) wake_at = std::min(wake_at, slot.restart_at);
    }
    absl::Duration stop_grace;
    {
      absl::MutexLock lock(&mu);
      mu.AwaitWithDeadline(absl::Condition(&stopping), wake_at);
      if (!stopping) continue;
      stop_grace = grace;
    }
    StopAll(stop_grace);
    return;
  }
}

void LocalWorkers::Impl::StopAll(absl::Duration stop_grace) {
  // SIGTERM to all at once (each preempts its attempt), then one shared grace period.
  for (Slot& slot : slots) {
    if (slot.process != nullptr) slot.process->Signal(SIGTERM).IgnoreError();
  }
  const absl::Time deadline = absl::Now() + stop_grace;
  for (Slot& slot : slots) {
    if (slot.process == nullptr) continue;
    absl::StatusOr<ExitStatus> ended =
        slot.process->Wait(std::max(deadline - absl::Now(), absl::ZeroDuration()));
    ExitStatus status = ended.ok() ? *ended : slot.process->Terminate(absl::ZeroDuration());
    TL_LOG(INFO) << "local worker " << slot.name << " stopped (" << status.ToString() << ")";
    slot.process.reset();
  }
}

LocalWorkers::LocalWorkers(LocalWorkersOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
}

LocalWorkers::~LocalWorkers() { Stop(); }

absl::Status LocalWorkers::Start() {
  LocalWorkersOptions& options = impl_->options;
  if (impl_->supervisor.joinable()) {
    return absl::FailedPreconditionError("local workers: already started");
  }
  if (options.count < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--local-workers: must be >= 0, got ", options.count));
  }
  if (options.count == 0) return absl::OkStatus();
  if (options.server_address.empty()) {
    return absl::InvalidArgumentError("local workers: the server address is empty");
  }
  if (options.work_dir.empty()) {
    return absl::InvalidArgumentError("--work-dir: required with --local-workers");
  }
  if (!(options.price_per_gpu_hour >= 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--price-per-gpu-hour: must be >= 0, got ", options.price_per_gpu_hour));
  }
  std::error_code error;
  std::filesystem::create_directories(options.work_dir, error);
  if (error) {
    return absl::InvalidArgumentError(
        absl::StrCat("--work-dir: cannot create ", options.work_dir, ": ", error.message()));
  }
  // Workers resume each other's checkpoints by absolute path.
  options.work_dir = std::filesystem::absolute(options.work_dir).lexically_normal().string();
  if (options.worker_binary.empty()) {
    options.worker_binary = (ExecutableDir().value_or(".") / "tuneledger-worker").string();
  }
  if (access(options.worker_binary.c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("local workers: ", options.worker_binary, " is not an executable file"));
  }

  impl_->slots.resize(options.count);
  for (int i = 0; i < options.count; ++i) {
    Impl::Slot& slot = impl_->slots[i];
    slot.name = absl::StrCat("local-", i);
    slot.index = i;
    if (absl::Status launched = impl_->Launch(slot); !launched.ok()) {
      impl_->StopAll(absl::Seconds(5));
      impl_->slots.clear();
      return launched;
    }
  }
  impl_->supervisor = std::thread(&Impl::Supervise, impl_.get());
  return absl::OkStatus();
}

void LocalWorkers::Stop(absl::Duration grace) {
  if (!impl_->supervisor.joinable()) return;
  {
    absl::MutexLock lock(&impl_->mu);
    impl_->stopping = true;
    impl_->grace = grace;
  }
  impl_->supervisor.join();
}

absl::StatusOr<std::unique_ptr<LocalWorkerSocket>> LocalWorkerSocket::Create() {
  const char* tmpdir = std::getenv("TMPDIR");
  std::string pattern = absl::StrCat(tmpdir != nullptr && *tmpdir != '\0' ? tmpdir : "/tmp",
                                     "/tuneledger-server-XXXXXX");
  if (mkdtemp(pattern.data()) == nullptr) {  // mode 0700
    return absl::InternalError(
        absl::StrCat("local workers: cannot create a folder for their socket (", pattern,
                     "): ", std::strerror(errno)));
  }
  return std::unique_ptr<LocalWorkerSocket>(new LocalWorkerSocket(pattern));
}

LocalWorkerSocket::~LocalWorkerSocket() {
  std::error_code ignored;  // a folder left in $TMPDIR is harmless
  std::filesystem::remove_all(dir_, ignored);
}

}  // namespace tuneledger
