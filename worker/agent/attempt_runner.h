// AttemptRunner: runs one leased attempt from start to FinishAttempt.
//
//   1. prepares <work-dir>/jobs/<id>/attempt-<n>/ and writes spec.json (work_dir_layout.h);
//   2. starts tuneledger-train as a child (own process group, stderr -> train.log, stdout piped)
//      with --resume-from the lease's checkpoint when it has one, CUDA_VISIBLE_DEVICES for a GPU
//      agent; a data-parallel lease (Lease.ranks) starts one process per rank it names, the
//      k-th on the agent's k-th GPU (a CPU agent splits its cores), rank 0's stdout relayed
//      and the others' stderr in train-rank<r>.log. A lease without rank 0 (a gang member) only
//      runs its ranks until they exit or are stopped: no progress stream, no FinishAttempt
//      (rank 0's worker ends the attempt for the gang);
//   3. relays every progress/eval/checkpoint line on ReportProgress with the attempt's accrued
//      cost, and sends a cost-only report every report interval while the trainer is silent;
//   4. on Cancel() (a CANCEL command, a heartbeat's cancel_job_ids, a revoked lease): SIGTERM,
//      SIGKILL after cancel_grace; on Preempt() (the agent's own SIGTERM): SIGTERM so that the
//      trainer checkpoints and exits 75, SIGKILL after preempt_grace;
//   5. ends the attempt with FinishAttempt: SUCCEEDED (adapter from the `done` line), FAILED
//      (the trainer's own `error` message, or how it died), CANCELLED, or PREEMPTED (with the
//      newest checkpoint; also when rank 0 says a rank was lost: the gang resumes like a
//      preempted job), retrying while the server is unreachable.
//
// A trainer that crashes only ends its attempt: nothing here exits or throws.
// Thread safety: Run() from one thread; Cancel() and Preempt() from any thread, at any time
// (before Run() too: the attempt then ends at once without starting the trainer).
#ifndef TUNELEDGER_WORKER_AGENT_ATTEMPT_RUNNER_H_
#define TUNELEDGER_WORKER_AGENT_ATTEMPT_RUNNER_H_

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "base/child_process.h"
#include "base/compute_cost.h"
#include "tuneledger/v1/worker.grpc.pb.h"
#include "worker/agent/agent_options.h"
#include "worker/agent/progress_stream.h"

namespace tuneledger::worker {

// The attempt's cost on the worker's clock (the formula of base/compute_cost.h).
double AccruedUsd(const AgentOptions& options, absl::Duration lease);

class AttemptRunner {
 public:
  // lease_start: when the lease arrived (the cost clock starts there: loading counts).
  AttemptRunner(const AgentOptions& options, tuneledger::v1::WorkerService::StubInterface* stub,
                std::string worker_id, tuneledger::v1::Lease lease,
                absl::Duration default_report_interval,
                std::chrono::steady_clock::time_point lease_start);
  ~AttemptRunner();
  AttemptRunner(const AttemptRunner&) = delete;
  AttemptRunner& operator=(const AttemptRunner&) = delete;

  // Runs the attempt to its end and reports it; returns the FinishAttempt request it sent (or
  // tried to send, if the server stayed unreachable).
  tuneledger::v1::FinishAttemptRequest Run();

  // Stop the trainer and end the attempt CANCELLED. The first stop request wins.
  void Cancel(std::string message);
  // Have the trainer checkpoint and stop; end the attempt PREEMPTED.
  void Preempt();

  const std::string& job_id() const { return lease_.job_id(); }

 private:
  enum class StopKind { kNone, kCancel, kPreempt };
  struct TrainerRun;  // what one trainer process said and how it ended

  void RequestStop(StopKind kind, std::string message);
  absl::Status PrepareAttemptDir();
  TrainerRun RunTrainer(ProgressStream& stream);
  // The named steps of RunTrainer.
  static tuneledger::v1::TrainerUpdate CostOnlyUpdate();
  ChildProcessOptions TrainerCommand() const;
  // Data parallel: whether this worker runs rank 0 (or the whole job), and the command of the
  // rank that is `local_index`-th in Lease.ranks.
  bool RunsRankZero() const;
  ChildProcessOptions RankCommand(int rank, size_t local_index) const;
  // Every local rank but 0 (peers_); SignalRanks signals `trainer` (may be null) and them.
  absl::Status StartPeers();
  void SignalRanks(ChildProcess* trainer, int sig);
  void ReapPeers(absl::Duration wait_for);
  // A gang member's whole attempt: its ranks, until they exit or a stop request ends them.
  tuneledger::v1::FinishAttemptRequest RunGangMember();
  absl::StatusOr<std::unique_ptr<ChildProcess>> StartTrainer();
  void HandleTrainerLine(const std::string& line, ProgressStream& stream, TrainerRun& run);
  // Returns how long to wait for the trainer to exit once its stdout closed.
  absl::Duration RelayUntilStdoutCloses(ChildProcess& trainer, ProgressStream& stream,
                                        TrainerRun& run);
  ExitStatus ReapTrainer(ChildProcess& trainer, absl::Duration wait_for);
  tuneledger::v1::FinishAttemptRequest BuildFinish(const TrainerRun& run);
  void SendFinish(const tuneledger::v1::FinishAttemptRequest& request);
  // <adapter_dir>/COST.md from the server's answer to a SUCCEEDED attempt (base/work_dir_layout.h).
  void WriteCostCard(const tuneledger::v1::FinishAttemptRequest& request,
                     const tuneledger::v1::FinishAttemptResponse& response);
  tuneledger::v1::ProgressReport Report(const tuneledger::v1::TrainerUpdate& update) const;
  absl::Duration LeaseTime() const;

  const AgentOptions options_;
  tuneledger::v1::WorkerService::StubInterface* const stub_;
  const std::string worker_id_;
  const tuneledger::v1::Lease lease_;
  const absl::Duration report_interval_;
  const std::chrono::steady_clock::time_point lease_start_;
  std::string attempt_dir_;
  const int wake_fd_;                                 // eventfd: a stop request wakes Run()'s poll
  std::vector<std::unique_ptr<ChildProcess>> peers_;  // local ranks other than 0

  absl::Mutex mu_;  // guards the stop request, set from other threads
  StopKind stop_ ABSL_GUARDED_BY(mu_) = StopKind::kNone;
  std::string stop_message_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tuneledger::worker

#endif  // TUNELEDGER_WORKER_AGENT_ATTEMPT_RUNNER_H_
