// ProgressStream: one attempt's WorkerService.ReportProgress call. Reports go up; commands
// (CANCEL) come down and are handed to a callback on the stream's reader thread.
//
// The stream survives a server that goes away: a failed write closes the call, and the next
// Send() opens a new one (no more often than a backoff allows), so a trainer keeps running and
// its progress resumes flowing when the server is back.
//
// Thread safety: Send() and Close() from one thread (the attempt runner); the callbacks run on
// the internal reader thread, which Close() (and the destructor) joins.
#ifndef TUNELEDGER_WORKER_AGENT_PROGRESS_STREAM_H_
#define TUNELEDGER_WORKER_AGENT_PROGRESS_STREAM_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "tuneledger/v1/worker.grpc.pb.h"
#include "worker/agent/backoff.h"

namespace tuneledger::worker {

class ProgressStream {
 public:
  using CommandHandler = std::function<void(const tuneledger::v1::WorkerCommand&)>;
  // Called when the server ended a call with a status that says this attempt is no longer
  // this worker's (NOT_FOUND, FAILED_PRECONDITION, PERMISSION_DENIED): stop the trainer.
  using RevokedHandler = std::function<void(const grpc::Status&)>;

  ProgressStream(tuneledger::v1::WorkerService::StubInterface* stub, CommandHandler on_command,
                 RevokedHandler on_revoked);
  ~ProgressStream();
  ProgressStream(const ProgressStream&) = delete;
  ProgressStream& operator=(const ProgressStream&) = delete;

  // Sends one report, opening the call first if there is none. False when it was not sent
  // (server unreachable, or waiting out the backoff before reopening).
  bool Send(const tuneledger::v1::ProgressReport& report);
  // Half-closes the call, waits up to `drain` for the server to end it (cancelling it after
  // that), joins the reader thread.
  void Close(absl::Duration drain = absl::Seconds(5));

 private:
  struct Call;  // one ReportProgress call: context, stream, reader thread
  bool Open();
  void EndCall(absl::Duration drain);

  tuneledger::v1::WorkerService::StubInterface* const stub_;
  const CommandHandler on_command_;
  const RevokedHandler on_revoked_;
  std::unique_ptr<Call> call_;  // null when no call is open
  Backoff reopen_backoff_{absl::Milliseconds(500), absl::Seconds(10)};
  absl::Time next_open_ = absl::InfinitePast();
};

}  // namespace tuneledger::worker

#endif  // TUNELEDGER_WORKER_AGENT_PROGRESS_STREAM_H_
