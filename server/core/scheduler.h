// Scheduler: the core's coordinator. Handlers call it; it decides, the JobStore persists,
// ServerMetrics and the WatchHub are told.
//
// Jobs: submit (validate, fill defaults, check inputs, enqueue), get/list/cancel/events/cost
// report/watch, each for the caller's tenant (another tenant's job is PERMISSION_DENIED).
// Workers: register, heartbeat, LeaseJob long poll (bounded wait, woken by submits and
// requeues), progress intake, FinishAttempt, and a command channel (CANCEL) that the
// ReportProgress stream and Heartbeat deliver.
//
// Worker identity (worker.proto): RegisterWorker issues the id and a session token, LeaseJob a
// lease token per attempt (WorkerTokens, under a key kept in the store). Heartbeat and LeaseJob
// must present the worker's session token, ReportProgress and FinishAttempt the attempt's lease
// token: PERMISSION_DENIED otherwise, so no caller can speak for another worker or attempt.
// A worker's price is bounded (SchedulerOptions::max_price_per_gpu_hour) and so are its GPUs.
//
// Cost semantics (numbers from cost_model.h):
//   - An attempt's lease starts at LeaseNext and ends at FinishAttempt; when the server revokes
//     it (cancel by the user or the budget) it ends at that instant: the job is charged up to
//     the cancel; for a worker declared LOST it ends at the worker's last contact.
//   - While it runs, an attempt costs price x gpus x its billed time on the server's clock; what
//     a worker reports as its cost is never believed. The server accrues at every tick, so a
//     silent worker cannot overspend, and enforces the budget at every report and every tick.
//   - Server downtime is not billed: after a restart, a running attempt's billed time resumes
//     from what was billed before it, cut back to its worker's last recorded contact.
//   - Reconciliation: a Heartbeat lists the worker's running jobs; an attempt leased to it that
//     the list lacks (once the lease is older than kLeaseDeliveryGrace) ends LOST, billed up to
//     the last time the worker showed it ran it (nothing, for a lease that never arrived), and
//     its job is requeued with the attempt counted.
//   - Budget: thresholds are recorded once each (BudgetPolicy); at 100% with policy CANCEL the
//     job is CANCELLED with reason BUDGET_EXCEEDED and a CANCEL command is queued for the
//     worker, within one report interval (the ticker runs every half interval).
//   - Lease expiry: a worker silent for heartbeat_timeout is LOST; its attempts end LOST and
//     their jobs are requeued with the attempt counted (past max_attempts: FAILED with reason
//     ATTEMPTS_EXHAUSTED).
//
// Time: every decision reads the Clock given at construction (tests pass a FakeClock and call
// Tick()); only the long-poll and command waits use wall time, to bound how long an RPC thread
// sleeps.
//
// Thread safety: every public method is thread-safe. mu_ guards the in-memory view of running
// attempts and workers and is held across the store call of each state change, so that the
// decision and its record cannot interleave with another (SQLite serializes writes anyway).
// The two high-rate calls, ReportProgress (PROGRESS, SCORING, COST reports) and Heartbeat,
// decide and queue their write under mu_ (JobStore::Start*: no I/O) and wait for its commit
// without mu_, so that the writes of many workers share one fsync (group commit) and keep the
// order of the decisions (reports that arrive together take mu_ once, on one of their callers'
// threads: IntakeReports); after the wait they take mu_ again (budget, reconciliation) and find
// the attempt or worker anew, since it may have ended meanwhile. A watcher may see a tick's bill
// and a report's bill of one job in either order. Reads go to the store without mu_. Stop()
// joins the ticker thread.
#ifndef TUNELEDGER_SERVER_CORE_SCHEDULER_H_
#define TUNELEDGER_SERVER_CORE_SCHEDULER_H_

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "base/clock.h"
#include "base/data_roots.h"
#include "server/core/budget_policy.h"
#include "server/core/cost_model.h"
#include "server/core/job_estimator.h"
#include "server/core/job_spec_validator.h"
#include "server/core/job_store.h"
#include "server/core/stamped_cache.h"
#include "server/core/watch_hub.h"
#include "server/core/worker_tokens.h"
#include "server/metrics/server_metrics.h"
#include "tuneledger/v1/jobs.pb.h"
#include "tuneledger/v1/worker.pb.h"

namespace tuneledger {

struct SchedulerOptions {
  absl::Duration heartbeat_interval = absl::Seconds(5);
  absl::Duration heartbeat_timeout = absl::Seconds(15);
  absl::Duration report_interval = absl::Seconds(1);
  absl::Duration max_lease_wait = absl::Seconds(30);
  // Period of the ticker (lease expiry, server-clock accrual and budget, gauges, series
  // retention). Zero = half the report interval, so a budget is enforced within one interval.
  absl::Duration tick_interval = absl::ZeroDuration();
  bool start_ticker = true;  // false: the owner calls Tick() (tests with a FakeClock)
  bool check_inputs = true;  // check the spec's files at submit (ValidateJobInputs)
  // The folders a spec's files must be in (base/data_roots.h). Empty: no job can be submitted.
  DataRoots data_roots;
  // RegisterWorker refuses a higher price (a worker's price is what tenants are billed).
  double max_price_per_gpu_hour = 1000;
  // LeaseJob long polls that may wait at once, in all and per worker credential; a poll beyond
  // either is answered at once (a lease if one is ready, else none) instead of holding a
  // thread. Keep the total under the worker listener's thread pool, so that heartbeats always
  // find a thread. One worker never has more than one waiting poll.
  int max_waiting_lease_polls = 128;
  int max_waiting_lease_polls_per_credential = 64;
  // A submit is RESOURCE_EXHAUSTED while its tenant has this many QUEUED jobs (jobs requeued
  // after a lost attempt may pass it; they were admitted before).
  int max_queued_jobs_per_tenant = 1000;
  // Data parallel across workers: how long a partly gathered gang may hold the workers that
  // joined it before it lets them go (its job stays QUEUED and may gather again).
  absl::Duration gang_timeout = absl::Seconds(30);
};

class Scheduler {
 public:
  // A watch: the job now, and every update after it (subscribed before the snapshot was read,
  // so nothing between the two is missed; an update may repeat what the snapshot shows).
  struct Watch {
    v1::Job snapshot;
    std::shared_ptr<WatchHub::Subscription> updates;
  };

  Scheduler(JobStore& store, ServerMetrics& metrics, const Clock& clock,
            SchedulerOptions options = {});
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Loads running attempts and workers from the store (after a restart, their workers get one
  // heartbeat timeout to reappear), refreshes the gauges and starts the ticker.
  absl::Status Start();
  // Wakes every long poll, command wait and watcher, and joins the ticker. Idempotent.
  void Stop();

  // ---- Jobs (tenant: the caller's) ----
  // INVALID_ARGUMENT naming every bad field, sizes included (job_spec_contract.h's limits);
  // RESOURCE_EXHAUSTED when the tenant has options().max_queued_jobs_per_tenant QUEUED jobs.
  // Either way nothing is stored. A repeated client_request_id returns the first job
  // (deduplicated). The job is stored with its pre-flight estimate (EstimateJob's), which
  // `estimate` receives when given (the first job's, when deduplicated); an estimate that cannot
  // read something says so in its notes and never fails the submit.
  absl::StatusOr<EnqueueResult> SubmitJob(const std::string& tenant, const v1::JobSpec& spec,
                                          v1::JobEstimate* estimate = nullptr);
  // What `spec` would cost on each class of registered workers (job_estimator.h), validated
  // exactly as SubmitJob validates it (the same errors); nothing is stored.
  absl::StatusOr<v1::JobEstimate> EstimateJob(const std::string& tenant, const v1::JobSpec& spec);
  absl::StatusOr<v1::Job> GetJob(const std::string& tenant, const std::string& job_id);
  // Dispatch order (see JobPage). page_size 0 = 100, at most 1000; negative: INVALID_ARGUMENT,
  // and so is a state that is not one of Job.State's five (empty `states`: every state).
  absl::StatusOr<JobPage> ListJobs(const std::string& tenant,
                                   const std::vector<v1::Job::State>& states, int page_size,
                                   const std::string& page_token);
  // USER cancel; FAILED_PRECONDITION for a job that already ended.
  absl::StatusOr<v1::Job> CancelJob(const std::string& tenant, const std::string& job_id,
                                    const std::string& message);
  absl::StatusOr<v1::ProgressHistory> GetProgressHistory(const std::string& tenant,
                                                         const std::string& job_id);
  absl::StatusOr<std::vector<v1::JobEvent>> ListJobEvents(const std::string& tenant,
                                                          const std::string& job_id);
  // Running attempts are billed up to now.
  absl::StatusOr<v1::CostReport> GetCostReport(const std::string& tenant,
                                               const std::string& job_id);
  // The tenant's finished jobs (SUCCEEDED, FAILED, CANCELLED) that carry every label in
  // `labels`, each with its last eval loss and total cost, the Pareto-optimal ones marked
  // (pareto_front.h). Reads at most the newest 10,000 finished jobs (then `truncated`).
  absl::StatusOr<v1::ParetoFront> GetParetoFront(const std::string& tenant,
                                                 const std::map<std::string, std::string>& labels);
  // Every worker, each with the id of a job of `tenant` it runs, if any: another tenant's job
  // ids are theirs to see (they tell who runs what, and for how long).
  absl::StatusOr<std::vector<v1::Worker>> ListWorkers(const std::string& tenant);
  absl::StatusOr<Watch> WatchJob(const std::string& tenant, const std::string& job_id);

  // ---- Workers ----
  // `credential`: the name of the worker credential the call came with (the service layer
  // authenticated it): logged at registration, and long polls are counted per credential.
  absl::StatusOr<v1::RegisterWorkerResponse> RegisterWorker(const v1::WorkerInfo& info,
                                                            const std::string& credential);
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest& request);
  // A worker's clean goodbye: it is GONE (never LOST), and an attempt it still holds ends
  // PREEMPTED (requeued; it does not use up the job's max_attempts).
  absl::Status DeregisterWorker(const v1::DeregisterWorkerRequest& request);
  // Long poll: waits up to min(request.wait_seconds, max_lease_wait) for a job that fits.
  // `caller_gone` (checked before every lease and a few times a second while waiting) ends the
  // wait without a lease once the worker has hung up, so a job is never leased to a dead call.
  absl::StatusOr<v1::LeaseJobResponse> LeaseJob(
      const v1::LeaseJobRequest& request, const std::string& credential,
      const std::function<bool()>& caller_gone = [] { return false; });
  // One report of the worker's stream. FAILED_PRECONDITION when the attempt is not running
  // there any more (cancelled, lost): the stream stays open so the CANCEL can be delivered.
  absl::Status ReportProgress(const v1::ProgressReport& report);
  // The command for this attempt (CANCEL), if the server has issued one; it stays until the
  // attempt is finished.
  std::optional<v1::WorkerCommand> CommandFor(const std::string& job_id, int attempt);
  // How many commands have been issued so far, returned once that differs from `seen` or
  // `timeout` of wall time has passed; nullopt once the scheduler stops (no more will come).
  // Whoever delivers commands waits here, then asks CommandFor() for the attempts it serves.
  std::optional<int64_t> AwaitCommands(int64_t seen, absl::Duration timeout);
  // A SUCCEEDED attempt's response carries the job's final cost card for <adapter_dir>/COST.md.
  absl::StatusOr<v1::FinishAttemptResponse> FinishAttempt(const v1::FinishAttemptRequest& request);

  // One round of the ticker: lease expiry, server-clock accrual and budget, gauges, retention.
  void Tick();

  const SchedulerOptions& options() const { return options_; }
  bool stopping() const;

 private:
  // `job`'s cost report with what was recorded at submit; its running attempt billed up to now.
  absl::StatusOr<v1::CostReport> CostReportOf(v1::Job job) ABSL_LOCKS_EXCLUDED(mu_);
  // A submitted spec checked as SubmitJob and EstimateJob check it (ValidateJobSpec,
  // ConfineJobPaths, ValidateJobInputs through input_checks_ when options_.check_inputs), its
  // paths confined, with the stamps of the files it names (taken once per submit and shared by
  // the checks, the base model's card and the estimate).
  struct CheckedJob {
    v1::JobSpec spec;
    InputStamps stamps;
  };
  absl::StatusOr<CheckedJob> CheckedSpec(const std::string& tenant, const v1::JobSpec& spec);
  // The estimate of a checked spec with its defaults: reads the files it names, the workers and
  // past jobs, without mu_ (tokenizing may take seconds). A store read that fails is a note.
  v1::JobEstimate EstimateOf(const v1::JobSpec& spec, const InputStamps& stamps)
      ABSL_LOCKS_EXCLUDED(mu_);
  // ReadBaseModel(model_path), kept while the folder's stamp is unchanged.
  v1::BaseModel BaseModelOf(const std::string& model_path, const std::string& stamp);

  // What the scheduler keeps in memory about a running attempt.
  // A worker of a data-parallel attempt and the GPUs (ranks) it gives.
  struct GangMember {
    std::string worker_id;
    int gpus = 0;
  };
  struct RunningAttempt {
    std::string job_id;
    int attempt = 0;
    std::string tenant;
    std::string worker_id;
    AttemptPricing pricing;
    absl::Time lease_start;
    // Billed time runs from here: lease_start, moved later by any server downtime.
    absl::Time billing_start;
    // The last time the worker showed it runs this attempt (a report, or a heartbeat that
    // lists it); nullopt until then. A reconciled attempt is billed up to it.
    std::optional<absl::Time> last_seen;
    double prior_usd = 0;        // earlier attempts of the job
    double prior_gpu_hours = 0;  // earlier attempts of the job
    double metered_usd = 0;      // already added to the per-tenant compute counter
    v1::Budget budget;
    BudgetState budget_state;
    StepRateEstimator step_rate;
    int step = 0;
    int total_steps = 0;
    // Every worker of the attempt, rank 0's (worker_id) first: one entry unless a gang leased
    // it. Recorded with the lease (AttemptPlacement), so a restarted server knows them too.
    std::vector<GangMember> members;
    int rendezvous_slot = 0;  // data parallel: rank 0 listens on its port base + this
  };
  // A gang being gathered for a QUEUED job that needs more GPUs than any one worker has free:
  // the workers that joined wait (their LeaseJob polls) until the GPUs add up, or the deadline
  // lets them go. One at a time, the best such job first, so that two gangs never hold half
  // of each other's workers.
  struct FormingGang {
    std::string job_id;
    int gpus = 0;
    // Every member's WorkerInfo.accelerator: ranks of one gang run one backend (Gloo on CPU,
    // NCCL on GPUs), so a gang never mixes kinds of workers.
    std::string accelerator;
    std::vector<GangMember> members;  // in joining order; the first runs rank 0
    absl::Time deadline;
  };
  struct WorkerEntry {
    v1::WorkerInfo info;
    absl::Time last_contact;
    int waiting_polls = 0;  // LeaseJob calls of this worker waiting now (at most 1)
  };
  // A CANCEL waiting for delivery to the worker of a revoked attempt.
  struct Revoked {
    int attempt = 0;
    std::string worker_id;
    v1::WorkerCommand command;
  };

  // Data parallel: the worker's GPUs a running attempt or the forming gang holds; whether it
  // gives GPUs to `running`; the forming gang past its deadline let go; `worker_id` joins (or
  // starts) a gang, which is leased once its GPUs add up (the lease for `worker_id`, the others'
  // kept in gang_leases_ for their next poll).
  int HeldGpusLocked(const std::string& worker_id) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static bool IsMember(const RunningAttempt& running, const std::string& worker_id);
  void ExpireGangLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::optional<v1::Lease>> JoinGangLocked(const std::string& worker_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::optional<v1::Lease>> LeaseGangLocked(FormingGang gang,
                                                           const std::string& caller)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Rank 0's rendezvous port on `primary` is its port base + this slot: the lowest that no
  // running attempt's rank 0 there holds.
  int RendezvousSlotLocked(const std::string& primary) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A leased attempt enters running_ and is billed from its first instant; returns the lease of
  // `members[i]` for each i (ranks in member order; rank 0's alone carries a lease token).
  absl::StatusOr<std::vector<v1::Lease>> StartLeasedLocked(const AttemptRecord& record,
                                                           std::vector<GangMember> members)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // The long poll; `deadline` is wall time.
  absl::StatusOr<v1::LeaseJobResponse> LeaseJobLocked(const v1::LeaseJobRequest& request,
                                                      absl::Time deadline,
                                                      const std::function<bool()>& caller_gone)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<v1::Job> GetOwnedJob(const std::string& tenant, const std::string& job_id);

  // Bills `running` up to `until` and records it (with `progress`, when given). `contact`:
  // the bill follows a report from the worker at `until`, recorded as its last contact.
  absl::StatusOr<JobUpdate> BillLocked(RunningAttempt& running, absl::Time until,
                                       const std::optional<v1::Progress>& progress,
                                       bool contact = false) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  AttemptBill ComputeBill(const RunningAttempt& running, absl::Time until) const;
  // The record BillLocked writes, not yet written: ReportProgress queues it under mu_ and waits
  // for its commit without mu_.
  AttemptProgress BillUpdateLocked(const RunningAttempt& running, absl::Time until,
                                   const std::optional<v1::Progress>& progress, bool contact) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Adds what `running` billed (`usd`) beyond what was metered to the tenant's compute counter.
  void MeterLocked(RunningAttempt& running, double usd) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // What QueueReportLocked decided: the bill to record, and whether the budget acts on it.
  struct QueuedReport {
    AttemptProgress bill;
    bool budget_acts = false;
  };
  // ReportProgress under mu_: checks the attempt, updates its in-memory view, records EVAL and
  // CHECKPOINT reports, meters the bill and returns it to record (the caller queues it).
  absl::StatusOr<QueuedReport> QueueReportLocked(const v1::ProgressReport& report)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A report waiting for its part under mu_ (IntakeReports), on its caller's stack.
  struct IntakeSlot {
    const v1::ProgressReport* report = nullptr;
    absl::CondVar wake;  // with intake_mu_: done or lead became true
    // Its part under mu_ ran and its write is durable (or it was refused): the fields below
    // hold what it left, and pending's Wait() returns at once.
    bool done = false;
    bool lead = false;  // its caller is to take mu_ for the reports waiting
    absl::Status status;
    std::optional<PendingWrite<JobUpdate>> pending;
    bool budget_acts = false;
  };
  // Runs the part under mu_ of every report waiting in intake_ (`own` among them), taking mu_
  // once for all of them; hands the lead to the first report that arrived meanwhile; waits for
  // the writes it queued to be durable and then wakes their callers, each once.
  void IntakeReports(IntakeSlot& own) ABSL_LOCKS_EXCLUDED(mu_, intake_mu_);
  // What the budget policy decides for `running` at `cost`.
  BudgetDecision DecideBudgetLocked(const RunningAttempt& running,
                                    const v1::CostSummary& cost) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Evaluates the budget after a bill; records crossings; cancels when the policy says so.
  absl::Status EnforceBudgetLocked(RunningAttempt& running, const v1::Job& job)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Cancels a job (running or queued); a running attempt is charged up to now and its worker
  // gets a CANCEL command.
  // `job_id` is a copy: callers often pass the id of the attempt this call erases.
  absl::StatusOr<v1::Job> CancelLocked(std::string job_id, v1::Job::Reason reason,
                                       const std::string& message)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends a running attempt as `outcome` (LOST or PREEMPTED) at `end` (its worker's last
  // contact) and requeues its job; `message` says why.
  void LoseAttemptLocked(std::string job_id, absl::Time end, const std::string& message,
                         const std::string& outcome = "LOST") ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ExpireWorkersLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Marks a worker LOST or GONE (`state`), ends its attempts at `attempts_end` (LOST, or
  // PREEMPTED for a GONE worker) and forgets it.
  void RemoveWorkerLocked(const std::string& worker_id, v1::Worker::State state,
                          absl::Time attempts_end, const std::string& message)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Server-clock accrual (the ticker): every running attempt's bill is queued under mu_ and
  // settled after the commit without mu_ (as ReportProgress does), so that a tick over a
  // thousand running attempts shares their fsync with the reports instead of stalling them.
  struct QueuedBill {
    std::string job_id;
    int attempt = 0;
    double usd = 0;
    PendingWrite<JobUpdate> write;
  };
  std::vector<QueuedBill> QueueAccrualLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SettleAccrual(std::vector<QueuedBill> bills) ABSL_LOCKS_EXCLUDED(mu_);
  // The active workers as the estimator reads them, rebuilt after workers_ changed.
  std::shared_ptr<const std::vector<WorkerGroup>> EstimateWorkers() ABSL_LOCKS_EXCLUDED(mu_);
  // The newest SUCCEEDED runs the estimator learns from, read again after a job succeeded.
  absl::StatusOr<std::shared_ptr<const std::vector<SucceededRun>>> EstimateHistory()
      ABSL_LOCKS_EXCLUDED(estimate_mu_);
  // QUEUED jobs that need more GPUs than any live worker has: a message and a WAITING event
  // say why they wait, and the unschedulable-jobs gauge counts them.
  void ExplainWaitingLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The attempt enters running_ (replacing any entry of its job) and running_by_worker_.
  void AddRunningLocked(const AttemptRecord& record) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The attempt leaves running_ and running_by_worker_.
  void EraseRunningLocked(std::map<std::string, RunningAttempt>::iterator it)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int FreeGpusLocked(const std::string& worker_id) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Touches the worker (memory and store). NOT_FOUND / FAILED_PRECONDITION: re-register.
  absl::Status TouchWorkerLocked(const std::string& worker_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // PERMISSION_DENIED unless `session_token` is the one issued to `worker_id`.
  absl::Status CheckSession(const std::string& worker_id, const std::string& session_token) const;
  // PERMISSION_DENIED unless `lease_token` is the one issued for this attempt on this worker.
  absl::Status CheckLease(const std::string& job_id, int attempt, const std::string& worker_id,
                          const std::string& lease_token) const;
  // Ends the attempts leased to `worker_id` that its heartbeat does not list (`reported`).
  void ReconcileLocked(const std::string& worker_id, const std::set<std::string>& reported,
                       absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Watchers, metrics and long polls learn about a verb's result.
  void Announce(const JobUpdate& update);
  void OnJobEnded(const v1::Job& job);
  // Jobs and workers by state, queue depth. Counting reads every stored job, so it runs at
  // Start() and on the ticker (at most one tick stale), never on the submit or report path.
  void RefreshGauges();
  // tuneledger_job_total_cost_usd and _pareto_optimal of the tenants a job with an eval loss
  // ended for since the last tick: one GetParetoFront each, on the ticker only.
  void RefreshCostQualityGauges();
  void RunTicker();

  JobStore& store_;
  ServerMetrics& metrics_;
  const Clock& clock_;
  const SchedulerOptions options_;
  WatchHub watch_hub_;
  // Set by Start() before any worker call can arrive; read-only after.
  WorkerTokens tokens_;

  // Reports waiting for mu_ (IntakeReports): 256 reporting threads handing mu_ to one another
  // on 2 cores kept each waiting milliseconds for a mutex held microseconds a report.
  absl::Mutex intake_mu_;
  std::vector<IntakeSlot*> intake_ ABSL_GUARDED_BY(intake_mu_);
  bool intake_led_ ABSL_GUARDED_BY(intake_mu_) = false;  // a caller runs IntakeReports now

  mutable absl::Mutex mu_;
  std::map<std::string, RunningAttempt> running_ ABSL_GUARDED_BY(mu_);  // by job id
  // running_'s job ids by their rank 0's worker (RunningAttempt::worker_id), so that a
  // heartbeat reconciles its worker's attempts without reading every running attempt. Changed
  // only by AddRunningLocked and EraseRunningLocked.
  std::map<std::string, std::set<std::string>> running_by_worker_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, WorkerEntry> workers_ ABSL_GUARDED_BY(mu_);  // active workers by id
  std::map<std::string, Revoked> revoked_ ABSL_GUARDED_BY(mu_);      // by job id
  int64_t queue_generation_ ABSL_GUARDED_BY(mu_) = 0;    // bumped when a job becomes QUEUED
  int64_t command_generation_ ABSL_GUARDED_BY(mu_) = 0;  // bumped when a command is issued
  std::optional<FormingGang> forming_gang_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, v1::Lease> gang_leases_ ABSL_GUARDED_BY(mu_);  // by worker id
  int waiting_polls_ ABSL_GUARDED_BY(mu_) = 0;                         // LeaseJob calls waiting now
  std::map<std::string, int> waiting_polls_by_credential_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  // EstimateWorkers()'s groups; reset whenever workers_ gains or loses a worker.
  std::shared_ptr<const std::vector<WorkerGroup>> estimate_workers_ ABSL_GUARDED_BY(mu_);
  // EstimateHistory()'s copy and the count of succeeded jobs it was read at. A leaf lock.
  absl::Mutex estimate_mu_;
  int64_t jobs_succeeded_ ABSL_GUARDED_BY(estimate_mu_) = 0;
  int64_t history_read_at_ ABSL_GUARDED_BY(estimate_mu_) = -1;
  std::shared_ptr<const std::vector<SucceededRun>> history_ ABSL_GUARDED_BY(estimate_mu_);
  // What the estimates, the input checks and the base models' cards read from model folders
  // and data files (each thread-safe on its own).
  EstimateFileCache estimate_files_;
  InputCheckCache input_checks_;
  StampedCache<v1::BaseModel> base_models_{4};
  // A leaf lock (taken with or without mu_ held, never the other way round).
  absl::Mutex cost_quality_mu_;
  std::set<std::string> cost_quality_stale_tenants_ ABSL_GUARDED_BY(cost_quality_mu_);

  std::thread ticker_;  // started by Start(), joined by Stop()
};

}  // namespace tuneledger

#endif  // TUNELEDGER_SERVER_CORE_SCHEDULER_H_
