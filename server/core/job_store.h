// JobStore: the server's durable state in one SQLite file, behind named verbs (no SQL leaves
// this class).
//
// Tables (schema versioned with PRAGMA user_version, migrated step by step on Open):
//   jobs             one row per job: spec, state, reason, attempts, latest progress, cost
//                    summary, budget state (thresholds crossed, overrun raised)
//   attempts         one row per attempt: worker, pricing, billed lease seconds and USD
//   events           the job event log (JobEvent), seq increasing across the server
//   progress_points  downsampled progress history: at most max_progress_points per job (every
//                    k-th report, k doubling whenever the cap is reached)
//   workers          registered workers and their declared hardware and price
//   progress_log     progress reports not yet folded into jobs, attempts and progress_points
//                    (progress_log.h: how a report costs one small row, and reads still see it)
//
// Durability: WAL, synchronous=FULL, busy timeout, STRICT tables, prepared statements only.
// Every write verb is ONE atomic unit that also appends its event row(s), and is durable when it
// returns OK. Writes are group-committed (group_commit.h): verbs of concurrent callers run as
// savepoints inside one transaction and share its fsync, each caller answered after that COMMIT
// (bench/README.md measures what that buys); a verb that fails is rolled back alone; a failed
// COMMIT fails every verb of its batch. Writes commit in the order they were queued. The Start*
// verbs queue a write and return at once, without I/O: a caller can queue under its own lock (to
// order its writes with its in-memory decisions) and wait for durability after releasing it.
// Reads use their own connections (a small pool) and see only committed state.
//
// Transition rules (QUEUED -> RUNNING -> SUCCEEDED | FAILED | CANCELLED; RUNNING -> QUEUED on
// a preempted or lost attempt). A verb whose transition is not allowed changes nothing and
// returns FAILED_PRECONDITION naming the job's state, e.g.
//   "job 7 is SUCCEEDED: only a QUEUED or RUNNING job can be cancelled".
// Unknown job or worker ids (including ids that are not decimal) are NOT_FOUND. A stored blob
// (spec, progress, worker info) that does not parse is DATA_LOSS naming the row: the file is
// damaged, and nothing is served or leased from it as if it were empty.
//
// Money and time figures are computed by the caller (cost_model.h); the store persists them.
// Thread safety: all methods are thread-safe. The writer connection belongs to commit_ (used by
// one batch leader at a time); each reader connection has its own mutex (Reader::mu).
#ifndef TUNELEDGER_SERVER_CORE_JOB_STORE_H_
#define TUNELEDGER_SERVER_CORE_JOB_STORE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "base/clock.h"
#include "server/core/budget_policy.h"
#include "server/core/cost_model.h"
#include "server/core/group_commit.h"
#include "server/core/job_store_schema.h"
#include "server/core/progress_log.h"
#include "server/core/writer_row_cache.h"
#include "tuneledger/v1/jobs.pb.h"
#include "tuneledger/v1/worker.pb.h"

namespace tuneledger {

// A job that has been preempted this many times (spot reclaims, workers stopping cleanly,
// server shutdowns) fails with ATTEMPTS_EXHAUSTED: preemptions are not the job's fault, so they
// do not use up spec.max_attempts, but a job must not bounce forever.
inline constexpr int kMaxPreemptedAttempts = 20;

class SqliteDb;

struct JobStoreOptions {
  int max_progress_points = 512;  // per job
  int max_batch = 256;            // verbs per group commit (one transaction, one fsync)
  // Read connections: a long read (the ticker's count of every job) does not hold up short ones
  // (GetJob, a ListJobs page), and reads run on several cores at once. More connections than
  // concurrent readers, so that a reader seldom waits for a connection whose holder the OS has
  // descheduled: ListJobs p99 with 8 callers on 2 cores went from 17-24 ms (4) to 13-17 ms (16),
  // bench/README.md.
  int reader_connections = 16;
  absl::Duration busy_timeout = absl::Seconds(5);
  // Tests only: migrate no further than this version (to test migrations from old files).
  int schema_version = kJobStoreSchemaVersion;
};

// A verb's result: the job after the verb and the event rows it appended (oldest first, with
// seq and time), so that the caller can fan them out to watchers.
struct JobUpdate {
  v1::Job job;
  std::vector<v1::JobEvent> events;
  // Requeue: the preemption waste of the attempt it ended (AttemptCost.wasted_usd), else 0.
  double wasted_usd = 0;
};

// QUEUED jobs that need more GPUs than any registered worker has.
struct UnschedulableJobs {
  struct Entry {
    std::string job_id;
    int gpus = 0;
  };
  int64_t count = 0;        // all of them
  std::vector<Entry> jobs;  // the first `limit`, oldest first
};

// What the server learned about a job when it was submitted, kept with it for its bill: the
// pre-flight estimate and where the base model comes from (CostReport.estimate, .base_model).
struct JobSubmitFacts {
  v1::JobEstimate estimate;
  v1::BaseModel base_model;
};

// A SUCCEEDED job as the pre-flight estimator learns from it (JobStore::ListSucceededRuns): what
// it was estimated as at submit, what it trained, and where and how long each attempt ran.
struct SucceededRun {
  std::string job_id;
  std::string model_shape;     // JobEstimate.model_shape recorded at submit
  int64_t scoring_tokens = 0;  // JobEstimate.scoring_tokens recorded at submit
  int64_t tokens = 0;          // the final Progress.tokens: every token the trainer trained
  struct Attempt {
    std::string accelerator;  // the worker's WorkerInfo.accelerator; empty when unknown
    double seconds = 0;       // billed lease seconds (AttemptCost.seconds)
  };
  std::vector<Attempt> attempts;  // in attempt order
};

struct EnqueueResult {
  JobUpdate update;
  bool deduplicated = false;  // an earlier submit had the same tenant + client_request_id
};

// What an attempt is billed at: one worker's declared prices, or a gang's GPU-weighted ones.
struct GangPricing {
  double price_per_gpu_hour = 0;
  double on_demand_price_per_gpu_hour = 0;
  bool spot = false;
};

// A QUEUED job that needs a gang: its id and GPUs.
struct GangJob {
  std::string job_id;
  int gpus = 0;
};

// Where a data-parallel attempt runs, recorded with its lease so that a restarted server knows
// every worker of a gang and the port slot rank 0 listens on (server/core/scheduler.h).
struct AttemptPlacement {
  // Each worker of a gang and the GPUs it gives, rank 0's first; empty: the lease's worker
  // alone, with all the attempt's GPUs.
  std::vector<std::pair<std::string, int>> members;
  int rendezvous_slot = 0;
};

// A running attempt as the store knows it.
struct AttemptRecord {
  v1::Job job;              // RUNNING; job.last_checkpoint() is the checkpoint to resume from
  v1::AttemptCost attempt;  // state "RUNNING", pricing from the worker, billed so far
  BudgetState budget;       // what the job has recorded against its budget
  std::vector<v1::JobEvent> events;  // LeaseNext: the STARTED event; empty when listed
  AttemptPlacement placement;
};

struct AttemptProgress {
  int attempt = 0;
  std::optional<v1::Progress> progress;  // nullopt: a cost-only report
  AttemptBill bill;
  // Set when the bill follows a report from the worker: its last contact is recorded with it
  // (as for a heartbeat), so a restarted server knows when it last heard from the worker.
  std::optional<absl::Time> worker_contact;
  // A data-selection scoring report (Progress.phase SCORING): the attempt's scoring time runs
  // from the first such report to this one (AttemptCost.scoring_seconds), on this bill's clock.
  std::optional<absl::Time> scoring_report;
};

// How an attempt ends. outcome: SUCCEEDED, FAILED, PREEMPTED, LOST or CANCELLED.
struct AttemptEnd {
  int attempt = 0;
  std::string outcome;
  absl::Time end_time;
  std::string message;
  std::string last_checkpoint;  // newest complete checkpoint; empty = unchanged
  AttemptBill bill;
  // Lease seconds whose steps are lost (AttemptCost.wasted_seconds): Requeue computes it from
  // the attempt's start, its last CHECKPOINT report and end_time; other verbs leave it 0.
  double wasted_seconds = 0;
};

// The most bytes of jobs one JobPage holds, counted as they are serialized in a
// ListJobsResponse: a quarter of gRPC's default 4 MiB message limit, so that a page of large
// jobs (a spec may be spec::kSpecMaxBytes) never fails a client that keeps that limit. A page
// always holds at least one job, and a job is far smaller than the limit.
inline constexpr int64_t kJobPageMaxBytes = 1 << 20;

struct JobQuery {
  std::string tenant;                  // empty = every tenant
  std::vector<v1::Job::State> states;  // empty = every state
  int page_size = 100;
  std::string page_token;  // from a previous JobPage
  int64_t max_bytes = kJobPageMaxBytes;
};

// Jobs in dispatch order: QUEUED (priority desc, then submit order), RUNNING (start order),
// then finished jobs newest first. A page ends at page_size jobs or at max_bytes of them,
// whichever comes first.
struct JobPage {
  std::vector<v1::Job> jobs;
  std::string next_page_token;  // empty on the last page
};

class JobStore {
 public:
  // Opens or creates the database and migrates it to the current schema. A file written by a
  // newer server is FAILED_PRECONDITION (never downgraded).
  static absl::StatusOr<std::unique_ptr<JobStore>> Open(const std::string& path, const Clock& clock,
                                                        JobStoreOptions options = {});
  ~JobStore();
  JobStore(const JobStore&) = delete;
  JobStore& operator=(const JobStore&) = delete;

  // ---- Job verbs (each: one transaction with its event rows) ----

  // New QUEUED job + SUBMITTED event. `spec` is validated with defaults filled. Idempotent on
  // (tenant, spec.client_request_id) when the id is not empty: the earlier job comes back with
  // deduplicated = true and nothing is written. RESOURCE_EXHAUSTED, with nothing written, when
  // the tenant already has `max_queued_for_tenant` QUEUED jobs (nullopt: no cap); a repeated
  // client_request_id still returns its job.
  absl::StatusOr<EnqueueResult> Enqueue(const std::string& tenant, const v1::JobSpec& spec,
                                        std::optional<int> max_queued_for_tenant = std::nullopt,
                                        const JobSubmitFacts& facts = {});

  // Leases the best QUEUED job that fits the worker (spec.gpus <= free_gpus): highest priority,
  // then submit order. The job becomes RUNNING with attempts + 1, the attempt row starts with
  // the worker's price and spot flag, and a STARTED event is written. nullopt when no job fits.
  // NOT_FOUND: unknown worker; FAILED_PRECONDITION: the worker is LOST or GONE. The attempt
  // records `rendezvous_slot`.
  absl::StatusOr<std::optional<AttemptRecord>> LeaseNext(const std::string& worker_id,
                                                         int free_gpus, int rendezvous_slot = 0);
  // Data parallel across workers (a gang, server/core/scheduler.h): the best QUEUED job that
  // needs more than `free_gpus` GPUs but at most `capacity`; nullopt when none.
  absl::StatusOr<std::optional<GangJob>> NextGangJob(int free_gpus, int capacity);
  // Leases QUEUED job `job_id` to a gang whose rank 0 runs on `worker_id`, at `pricing` (the
  // members' prices weighted by the GPUs each gives; spot when any member is), as LeaseNext
  // does, recording `placement`. nullopt when the job is no longer QUEUED.
  absl::StatusOr<std::optional<AttemptRecord>> LeaseToGang(const std::string& job_id,
                                                           const std::string& worker_id,
                                                           const GangPricing& pricing,
                                                           const AttemptPlacement& placement);

  // Latest progress (if any) and the running bill of the current attempt; adds a progress
  // history point. FAILED_PRECONDITION unless the job is RUNNING `update.attempt`.
  absl::StatusOr<JobUpdate> RecordProgress(const std::string& job_id,
                                           const AttemptProgress& update);
  // RecordProgress queued for the group commit; Wait() for its result once durable.
  PendingWrite<JobUpdate> StartRecordProgress(const std::string& job_id, AttemptProgress update);
  // EVAL event; sets progress.eval_loss. Same precondition as RecordProgress.
  absl::StatusOr<JobUpdate> RecordEval(const std::string& job_id, int attempt, int step,
                                       double eval_loss);
  // CHECKPOINT event; sets last_checkpoint. Same precondition as RecordProgress.
  absl::StatusOr<JobUpdate> RecordCheckpoint(const std::string& job_id, int attempt, int step,
                                             const std::string& path);
  // One BUDGET_THRESHOLD event per crossed threshold and a PROJECTED_OVERRUN event when
  // raised; persists decision.next_state. cost figures go into the events. FAILED_PRECONDITION
  // unless the job is RUNNING `attempt`.
  absl::StatusOr<JobUpdate> RecordBudget(const std::string& job_id, int attempt,
                                         const BudgetDecision& decision, double accrued_usd,
                                         double projected_usd);

  // QUEUED jobs that need more than `max_worker_gpus` GPUs (count, and the first `limit`).
  absl::StatusOr<UnschedulableJobs> FindUnschedulable(int max_worker_gpus, int limit);
  // Says why a QUEUED job waits: sets its message and writes a WAITING event, once per
  // distinct message. nullopt when nothing changed (the job is not QUEUED, or already says so).
  absl::StatusOr<std::optional<JobUpdate>> RecordWaiting(const std::string& job_id,
                                                         const std::string& message);

  // Ends the current attempt as PREEMPTED or LOST (end.outcome). The job goes back to QUEUED
  // (REQUEUED event) to resume from its last checkpoint, or, when this makes spec.max_attempts
  // LOST attempts or kMaxPreemptedAttempts PREEMPTED ones, to FAILED with reason
  // ATTEMPTS_EXHAUSTED (FAILED event).
  // FAILED_PRECONDITION unless the job is RUNNING end.attempt.
  absl::StatusOr<JobUpdate> Requeue(const std::string& job_id, const AttemptEnd& end);

  // Ends the current attempt and the job: SUCCEEDED (adapter_path) or FAILED (reason, message
  // verbatim). FAILED_PRECONDITION unless the job is RUNNING end.attempt.
  absl::StatusOr<JobUpdate> Finish(const std::string& job_id, const AttemptEnd& end,
                                   v1::Job::State state, v1::Job::Reason reason,
                                   const std::string& adapter_path);

  // QUEUED or RUNNING -> CANCELLED with `reason` (USER or BUDGET_EXCEEDED). A running attempt
  // ends CANCELLED with `running_attempt`'s bill (nullopt: as last billed, now). Other states:
  // FAILED_PRECONDITION.
  absl::StatusOr<JobUpdate> Cancel(const std::string& job_id, v1::Job::Reason reason,
                                   const std::string& message,
                                   const std::optional<AttemptEnd>& running_attempt);

  // ---- Worker verbs ----

  // New IDLE worker with a fresh id ("w-<n>").
  absl::StatusOr<v1::Worker> RegisterWorker(const v1::WorkerInfo& info);
  // Records contact. NOT_FOUND: unknown; FAILED_PRECONDITION: LOST or GONE (re-register).
  absl::Status TouchWorker(const std::string& worker_id);
  // TouchWorker queued for the group commit (contact time: now); Wait() once durable.
  PendingStatus StartTouchWorker(const std::string& worker_id);
  // LOST (missed heartbeats) or GONE. NOT_FOUND: unknown.
  absl::Status SetWorkerGone(const std::string& worker_id, v1::Worker::State state);

  // ---- Server keys ----

  // The secret key called `name`: made once from the system's random source (`bytes` long)
  // and stored, so every later call, and every later server on this file, gets the same one.
  absl::StatusOr<std::string> ServerKey(const std::string& name, size_t bytes);

  // ---- Reads (committed state) ----

  absl::StatusOr<v1::Job> GetJob(const std::string& job_id);
  absl::StatusOr<JobPage> ListJobs(const JobQuery& query);
  absl::StatusOr<std::vector<v1::JobEvent>> ListJobEvents(const std::string& job_id);
  absl::StatusOr<std::vector<v1::AttemptCost>> ListAttempts(const std::string& job_id);
  // What Enqueue recorded with the job (empty messages for a job submitted before schema 5).
  absl::StatusOr<JobSubmitFacts> GetSubmitFacts(const std::string& job_id);
  // Oldest first; at most JobStoreOptions::max_progress_points.
  absl::StatusOr<std::vector<v1::Progress>> ListProgressHistory(const std::string& job_id);
  absl::StatusOr<std::vector<AttemptRecord>> ListRunningAttempts();
  // Job.State name -> count (states without jobs are absent).
  absl::StatusOr<std::map<std::string, int64_t>> CountJobsByState();
  absl::StatusOr<v1::Worker> GetWorker(const std::string& worker_id);
  // Every worker, in registration order; `infos` (when not null) gets what each registered with
  // (WorkerInfo, rendezvous address and on-demand price included), in the same order.
  absl::StatusOr<std::vector<v1::Worker>> ListWorkers(std::vector<v1::WorkerInfo>* infos = nullptr);
  // The newest `limit` SUCCEEDED jobs (by end time) that carry an estimate recorded at submit,
  // newest first, each with its attempts' accelerators and billed seconds.
  absl::StatusOr<std::vector<SucceededRun>> ListSucceededRuns(int limit);

  // The schema version of the open file.
  absl::StatusOr<int> SchemaVersion();
  // Write transactions (and so fsyncs) committed since Open: tests and benchmarks compare it
  // with the writes made to see how many shared one commit.
  int64_t WriteBatchesCommitted() { return commit_.batches_committed(); }

 private:
  // A read connection and the mutex that gives one thread at a time its use.
  struct Reader {
    absl::Mutex mu;
    std::unique_ptr<SqliteDb> db ABSL_GUARDED_BY(mu);
  };
  JobStore(std::unique_ptr<SqliteDb> writer, std::vector<std::unique_ptr<SqliteDb>> readers,
           const Clock& clock, JobStoreOptions options);

  // Runs `body` as one atomic, durable unit on the writer (group commit; see above).
  absl::Status Write(absl::FunctionRef<absl::Status(SqliteDb&)> body);
  // Runs `body` in one read transaction on a free reader connection (or waits for one).
  absl::Status Read(absl::FunctionRef<absl::Status(SqliteDb&)> body);
  // Inside a Write: QUEUED job `job_id` becomes RUNNING on `worker_id` with a new attempt row
  // priced at `pricing` and placed at `placement`, and its STARTED event (LeaseNext,
  // LeaseToGang).
  absl::StatusOr<AttemptRecord> StartAttempt(SqliteDb& db, int64_t job_id,
                                             const std::string& worker_id,
                                             const GangPricing& pricing,
                                             const AttemptPlacement& placement);

  // The skeleton of every verb on one existing job: in one Write, load the job (NOT_FOUND),
  // check it runs `running_attempt` when one is given (FAILED_PRECONDITION), run `write`,
  // reload the job into the result and append the events that `events` makes of the job before
  // and after.
  struct TransitionContext {
    SqliteDb& db;
    int64_t id;
    const v1::Job& before;
    absl::Time now;
  };
  absl::StatusOr<JobUpdate> Transition(
      const std::string& job_id, std::optional<int> running_attempt,
      absl::FunctionRef<absl::Status(const TransitionContext&)> write,
      absl::FunctionRef<std::vector<v1::JobEvent>(const v1::Job& before, const v1::Job& after)>
          events);
  // Transition queued for the group commit: `write` and `events` run later on the batch
  // leader's thread, so they own what they use.
  PendingWrite<JobUpdate> StartTransition(
      const std::string& job_id, std::optional<int> running_attempt,
      std::function<absl::Status(const TransitionContext&)> write,
      std::function<std::vector<v1::JobEvent>(const v1::Job& before, const v1::Job& after)> events);

  const Clock& clock_;
  const JobStoreOptions options_;

  std::unique_ptr<SqliteDb> writer_;  // used only through commit_
  GroupCommit commit_;
  ProgressLog log_;       // only inside writes (the batch leader's thread)
  LatestReports latest_;  // thread-safe
  // Parsed jobs rows for the progress report's write: loading and parsing the row was half of
  // that write's time on the leader's thread. Only inside writes.
  WriterRowCache<v1::Job> writer_jobs_;

  std::vector<std::unique_ptr<Reader>> readers_;  // fixed after construction
  std::atomic<size_t> next_reader_{0};            // where a reader that finds none free waits
};

}  // namespace tuneledger

#endif  // TUNELEDGER_SERVER_CORE_JOB_STORE_H_
