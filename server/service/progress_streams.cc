#include "server/service/progress_streams.h"

#include <algorithm>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "base/grpc_status.h"
#include "base/log.h"

namespace tuneledger {
namespace {

// How often the command thread looks up from its wait to see whether it should stop.
constexpr absl::Duration kCommandPoll = absl::Milliseconds(50);

using Attempt = std::pair<std::string, int>;  // job id, attempt

}  // namespace

// One stream's reactor. Its activities: the read (a read in flight, or the last report being
// handled on an intake thread) and the write (one command in flight). Finish is called once,
// by whichever activity ends last after the stream started closing, so no gRPC call can follow
// it. The reactor keeps itself alive (self_) until OnDone.
class ProgressStreams::Stream final
    : public grpc::ServerBidiReactor<v1::ProgressReport, v1::WorkerCommand>,
      public std::enable_shared_from_this<Stream> {
 public:
  explicit Stream(ProgressStreams& owner) : owner_(owner) {}

  // Starts the first read, or ends the stream with `refused`.
  void Begin(const absl::Status& refused) {
    self_ = shared_from_this();
    if (!refused.ok()) {
      Actions next;
      {
        absl::MutexLock lock(&mu_);
        reading_ = false;
        CloseLocked(ToGrpcStatus(refused));
        next = NextLocked();
      }
      Run(next);
      return;
    }
    owner_.Register(self_);
    StartRead(&report_);
  }

  // The attempt this stream reported last, while its command has not been queued.
  std::optional<Attempt> PendingAttempt() {
    absl::MutexLock lock(&mu_);
    if (closing_ || !current_.has_value() || delivered_.count(*current_) > 0) return std::nullopt;
    return current_;
  }

  // Writes `command` for `attempt` unless one was queued for that attempt before.
  void Send(const Attempt& attempt, v1::WorkerCommand command) {
    Actions next;
    {
      absl::MutexLock lock(&mu_);
      if (closing_ || !delivered_.insert(attempt).second) return;
      outbox_.push_back(std::move(command));
      next = NextLocked();
    }
    Run(next);
  }

  void OnReadDone(bool ok) override {
    if (ok) {
      owner_.Post([self = shared_from_this()] { self->Handle(); });
      return;
    }
    // The worker closed its side (WritesDone), or the call broke or was cancelled.
    Actions next;
    {
      absl::MutexLock lock(&mu_);
      reading_ = false;
      CloseLocked(grpc::Status::OK);
      next = NextLocked();
    }
    Run(next);
  }

  void OnWriteDone(bool ok) override {
    Actions next;
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok) {
        TL_LOG(WARNING) << "could not send " << v1::WorkerCommand::Kind_Name(in_flight_.kind())
                        << " for job " << in_flight_.job_id() << ": the stream is closed";
        CloseLocked(grpc::Status::OK);
      }
      next = NextLocked();
    }
    Run(next);
  }

  void OnDone() override {
    owner_.Unregister(this);
    const std::shared_ptr<Stream> last = std::move(self_);  // may destroy *this on return
  }

 private:
  // What NextLocked() decided; done by Run() without mu_.
  struct Actions {
    const v1::WorkerCommand* write = nullptr;
    std::optional<grpc::Status> finish;
  };

  // On an intake thread: records report_ (blocking until it is durable), then reads the next.
  void Handle() {
    const absl::Status status = owner_.scheduler_.ReportProgress(report_);
    const Attempt attempt{report_.job_id(), report_.attempt()};
    if (absl::IsFailedPrecondition(status)) {
      // Cancelled or moved on: the stream stays, so that the CANCEL reaches the worker.
      TL_LOG(DEBUG) << "report ignored: " << status;
    } else if (!status.ok() && !absl::IsPermissionDenied(status)) {
      TL_LOG(WARNING) << "progress report of job " << attempt.first << ": " << status;
    }
    bool read = false;
    bool new_attempt = false;
    Actions next;
    {
      absl::MutexLock lock(&mu_);
      if (absl::IsPermissionDenied(status)) {
        // Not this caller's attempt: end before the stream can receive that attempt's command.
        reading_ = false;
        CloseLocked(ToGrpcStatus(status));
      } else {
        new_attempt = current_ != attempt;
        current_ = attempt;
        read = !closing_;
        reading_ = read;
      }
      next = NextLocked();
    }
    Run(next);
    if (new_attempt) {
      // A command issued before this stream reported the attempt (a job cancelled before its
      // first report) is not announced again: look it up once.
      if (std::optional<v1::WorkerCommand> command =
              owner_.scheduler_.CommandFor(attempt.first, attempt.second)) {
        Send(attempt, *std::move(command));
      }
    }
    if (read) StartRead(&report_);
  }

  // Ends the stream with `status` once no activity is left (the first reason wins).
  void CloseLocked(grpc::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (closing_) return;
    closing_ = true;
    status_ = std::move(status);
    outbox_.clear();
  }

  Actions NextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Actions next;
    if (!writing_ && !closing_ && !outbox_.empty()) {
      writing_ = true;
      in_flight_ = std::move(outbox_.front());
      outbox_.pop_front();
      next.write = &in_flight_;
    }
    if (closing_ && !reading_ && !writing_ && !finished_) {
      finished_ = true;
      next.finish = status_;
    }
    return next;
  }

  void Run(const Actions& next) {
    if (next.write != nullptr) StartWrite(next.write);  // in_flight_ stays until OnWriteDone
    if (next.finish.has_value()) Finish(*next.finish);
  }

  ProgressStreams& owner_;
  std::shared_ptr<Stream> self_;  // set in Begin, dropped in OnDone
  v1::ProgressReport report_;     // the read's buffer: only the read activity touches it
  absl::Mutex mu_;
  bool reading_ ABSL_GUARDED_BY(mu_) = true;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
  std::deque<v1::WorkerCommand> outbox_ ABSL_GUARDED_BY(mu_);
  v1::WorkerCommand in_flight_;  // written under mu_ while !writing_; read by the write
  std::optional<Attempt> current_ ABSL_GUARDED_BY(mu_);
  std::set<Attempt> delivered_ ABSL_GUARDED_BY(mu_);  // attempts whose command was queued
};

ProgressStreams::ProgressStreams(Scheduler& scheduler, int intake_threads) : scheduler_(scheduler) {
  for (int i = 0; i < std::max(1, intake_threads); ++i) {
    intake_.emplace_back([this] { RunIntake(); });
  }
  commands_ = std::thread([this] { RunCommands(); });
}

ProgressStreams::~ProgressStreams() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& thread : intake_) thread.join();
  commands_.join();
}

grpc::ServerBidiReactor<v1::ProgressReport, v1::WorkerCommand>* ProgressStreams::Open(
    absl::Status refused) {
  auto stream = std::make_shared<Stream>(*this);
  stream->Begin(refused);
  return stream.get();  // kept alive by its own reference until OnDone
}

void ProgressStreams::Post(std::function<void()> task) {
  absl::MutexLock lock(&mu_);
  tasks_.push_back(std::move(task));
}

void ProgressStreams::Register(const std::shared_ptr<Stream>& stream) {
  absl::MutexLock lock(&mu_);
  streams_[stream.get()] = stream;
}

void ProgressStreams::Unregister(const Stream* stream) {
  absl::MutexLock lock(&mu_);
  streams_.erase(stream);
}

bool ProgressStreams::stopping() const {
  absl::MutexLock lock(&mu_);
  return stopping_;
}

void ProgressStreams::RunIntake() {
  while (true) {
    std::function<void()> task;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || !tasks_.empty(); };
      mu_.Await(absl::Condition(&ready));
      if (tasks_.empty()) return;  // stopping, nothing left
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    task();
  }
}

void ProgressStreams::RunCommands() {
  std::optional<int64_t> seen = scheduler_.AwaitCommands(-1, absl::ZeroDuration());
  while (seen.has_value() && !stopping()) {
    const std::optional<int64_t> issued = scheduler_.AwaitCommands(*seen, kCommandPoll);
    if (issued == seen) continue;
    seen = issued;
    if (!seen.has_value()) break;
    std::vector<std::shared_ptr<Stream>> open;
    {
      absl::MutexLock lock(&mu_);
      for (const auto& [key, weak] : streams_) {
        if (std::shared_ptr<Stream> stream = weak.lock()) open.push_back(std::move(stream));
      }
    }
    for (const std::shared_ptr<Stream>& stream : open) {
      const std::optional<Attempt> pending = stream->PendingAttempt();
      if (!pending.has_value()) continue;
      if (std::optional<v1::WorkerCommand> command =
              scheduler_.CommandFor(pending->first, pending->second)) {
        stream->Send(*pending, *std::move(command));
      }
    }
  }
  // The scheduler stopped: it issues no more commands. Wait for the destructor.
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(&stopping_));
}

}  // namespace tuneledger
