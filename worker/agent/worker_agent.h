// WorkerAgent: the tuneledger-worker loop. Registers with the server (retrying with backoff
// while it is unreachable), heartbeats on its own thread, long-polls LeaseJob and runs each
// lease with an AttemptRunner, one at a time. Re-registers when the server says it does not
// know this worker (known=false: it was declared LOST, or the server lost its state).
//
//   WorkerAgent agent(options, grpc::CreateChannel(options.server_address, ...));
//   std::thread signals([&] { WaitForSigterm(); agent.Shutdown(); });
//   agent.Run();   // returns after Shutdown(), once the running attempt reported PREEMPTED
//
// Thread safety: Run() from one thread (it must outlive the trainers it starts: their
// parent-death signal is tied to it); Shutdown() from any thread.
#ifndef TUNELEDGER_WORKER_AGENT_WORKER_AGENT_H_
#define TUNELEDGER_WORKER_AGENT_WORKER_AGENT_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "tuneledger/v1/worker.grpc.pb.h"
#include "worker/agent/agent_options.h"
#include "worker/agent/attempt_runner.h"

namespace tuneledger::worker {

class WorkerAgent {
 public:
  WorkerAgent(AgentOptions options, std::shared_ptr<grpc::ChannelInterface> channel);
  ~WorkerAgent();
  WorkerAgent(const WorkerAgent&) = delete;
  WorkerAgent& operator=(const WorkerAgent&) = delete;

  // Serves leases until Shutdown(). OK after a shutdown; an error only for a problem that
  // retrying cannot fix (none today: an unreachable server is retried forever).
  absl::Status Run();

  // Preempts the running attempt (the trainer checkpoints, the attempt ends PREEMPTED), stops
  // polling for work and makes Run() return. Idempotent.
  void Shutdown();

 private:
  // Registers until it succeeds or shutdown; false on shutdown.
  bool Register();
  // Tells the server this worker stops (it shows GONE, not LOST); best effort.
  void Deregister();
  void HeartbeatLoop();
  // Waits d, or less if *flag (guarded by mu_) becomes true; returns !*flag.
  bool SleepUnless(const bool* flag, absl::Duration d);
  std::string worker_id() const;

  const AgentOptions options_;
  std::unique_ptr<tuneledger::v1::WorkerService::StubInterface> stub_;
  tuneledger::v1::WorkerInfo info_;

  // mu_ guards registration state and the in-flight lease call / attempt, which the heartbeat
  // thread and Shutdown() reach into.
  mutable absl::Mutex mu_;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  // Heartbeats go on while a preempted attempt checkpoints; Run() stops them when it returns.
  bool heartbeats_stopped_ ABSL_GUARDED_BY(mu_) = false;
  bool registered_ ABSL_GUARDED_BY(mu_) = false;  // at least once
  std::string worker_id_ ABSL_GUARDED_BY(mu_);
  std::string session_token_ ABSL_GUARDED_BY(mu_);  // issued with worker_id_
  bool needs_register_ ABSL_GUARDED_BY(mu_) = true;
  absl::Duration heartbeat_interval_ ABSL_GUARDED_BY(mu_) = absl::Seconds(5);
  absl::Duration report_interval_ ABSL_GUARDED_BY(mu_) = absl::Seconds(5);
  grpc::ClientContext* lease_call_ ABSL_GUARDED_BY(mu_) = nullptr;
  AttemptRunner* attempt_ ABSL_GUARDED_BY(mu_) = nullptr;

  std::thread heartbeat_thread_;  // joined by Run() before it returns
};

}  // namespace tuneledger::worker

#endif  // TUNELEDGER_WORKER_AGENT_WORKER_AGENT_H_
