// The server side of WorkerService.ReportProgress (proto/tuneledger/v1/worker.proto): every
// running attempt's worker keeps one such stream open for the whole attempt, so a server with a
// thousand busy workers holds a thousand streams. They are gRPC callback reactors, not handler
// threads: an open stream costs no thread, whatever the listener's thread limit
// (GrpcServerOptions::max_threads), and the streams share two kinds of threads owned here:
//   intake threads   hand each received report to Scheduler::ReportProgress, which blocks until
//                    the report is durable (reports of many streams share one commit: the
//                    scheduler's group commit); `intake_threads` bounds how many wait at once
//   one command thread  waits for the scheduler to issue a command (Scheduler::AwaitCommands)
//                    and writes it (CANCEL) to the stream that reported that attempt, at once,
//                    not only when the worker's next report arrives
// Per stream: one read at a time (the next read starts once the previous report is handled, so
// reports are recorded in the order sent and a slow store slows the sender, never buffers
// without bound); one write at a time; each attempt's command is written once. A report the
// scheduler answers with PERMISSION_DENIED (another worker's attempt, a wrong lease token) ends
// the stream with that status, and the stream never receives that attempt's command. The
// stream ends OK when the worker closes its side (WritesDone), and with the read's failure when
// the call breaks or the server shuts down.
//
// Thread safety: Open() from gRPC's threads; each stream's state is under its own mutex, and no
// gRPC call (StartRead, StartWrite, Finish) is made while holding it, since gRPC may run a
// reaction on the calling thread.
#ifndef TUNELEDGER_SERVER_SERVICE_PROGRESS_STREAMS_H_
#define TUNELEDGER_SERVER_SERVICE_PROGRESS_STREAMS_H_

#include <grpcpp/support/server_callback.h>

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "server/core/scheduler.h"
#include "tuneledger/v1/worker.pb.h"

namespace tuneledger {

class ProgressStreams {
 public:
  static constexpr int kDefaultIntakeThreads = 64;

  ProgressStreams(Scheduler& scheduler, int intake_threads = kDefaultIntakeThreads);
  // Joins the threads. The gRPC server must have shut down first (every stream done).
  ~ProgressStreams();
  ProgressStreams(const ProgressStreams&) = delete;
  ProgressStreams& operator=(const ProgressStreams&) = delete;

  // The reactor of one new stream; gRPC owns it until its OnDone. `refused` not OK (the caller
  // failed authentication): the stream ends at once with that status, reading nothing.
  grpc::ServerBidiReactor<v1::ProgressReport, v1::WorkerCommand>* Open(absl::Status refused);

 private:
  class Stream;

  void Post(std::function<void()> task) ABSL_LOCKS_EXCLUDED(mu_);
  void Register(const std::shared_ptr<Stream>& stream) ABSL_LOCKS_EXCLUDED(mu_);
  void Unregister(const Stream* stream) ABSL_LOCKS_EXCLUDED(mu_);
  void RunIntake() ABSL_LOCKS_EXCLUDED(mu_);
  void RunCommands() ABSL_LOCKS_EXCLUDED(mu_);
  bool stopping() const ABSL_LOCKS_EXCLUDED(mu_);

  Scheduler& scheduler_;
  mutable absl::Mutex mu_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  std::map<const Stream*, std::weak_ptr<Stream>> streams_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> intake_;
  std::thread commands_;
};

}  // namespace tuneledger

#endif  // TUNELEDGER_SERVER_SERVICE_PROGRESS_STREAMS_H_
