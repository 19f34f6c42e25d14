#include "server/core/scheduler.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/bounded_text.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "server/core/job_estimator.h"
#include "server/core/job_spec_validator.h"
#include "server/core/job_states.h"
#include "server/core/job_store_rows.h"
#include "server/core/model_card.h"
#include "server/core/pareto_front.h"

namespace tuneledger {
namespace {

constexpr int kDefaultPageSize = 100;
constexpr int kMaxPageSize = 1000;
// The most finished jobs one GetParetoFront reads (newest first): each costs a read of its
// attempts, and the answer stays well under gRPC's 4 MiB message limit.
constexpr int kParetoMaxJobs = 10000;
// How often a waiting long poll looks whether its worker is still on the line.
constexpr absl::Duration kHangUpCheckPeriod = absl::Milliseconds(250);
// The most GPUs one worker may declare.
constexpr int kMaxWorkerGpus = 1024;
// A heartbeat that does not list an attempt ends it only once its lease is this old (or one
// heartbeat interval, if shorter): a heartbeat sent while the lease was on its way is no proof.
constexpr absl::Duration kLeaseDeliveryGrace = absl::Seconds(2);
// The name of the job store key that worker tokens derive from.
constexpr char kWorkerTokensKey[] = "worker-tokens";
// The most SUCCEEDED jobs (newest first) an estimate reads to find past jobs of its model shape.
constexpr int kEstimateHistoryJobs = 1000;

// ServerMetrics spells "no reason" as an empty string.
std::string ReasonLabel(v1::Job::Reason reason) {
  return reason == v1::Job::REASON_UNSPECIFIED ? "" : v1::Job::Reason_Name(reason);
}

v1::Progress ProgressFromUpdate(const v1::TrainerUpdate& update, absl::Time now,
                                std::optional<absl::Duration> remaining) {
  v1::Progress progress;
  progress.set_step(update.step());
  progress.set_total_steps(update.total_steps());
  progress.set_epoch(update.epoch());
  progress.set_loss(update.loss());
  progress.set_learning_rate(update.learning_rate());
  progress.set_tokens(update.tokens());
  progress.set_tokens_per_second(update.tokens_per_second());
  progress.set_elapsed_seconds(update.elapsed_seconds());
  if (update.total_steps() > 0) {
    progress.set_ratio(std::min(1.0, static_cast<double>(update.step()) / update.total_steps()));
  }
  if (remaining.has_value()) progress.set_eta_seconds(absl::ToDoubleSeconds(*remaining));
  SetTimestamp(now, *progress.mutable_update_time());
  progress.set_phase(v1::Progress::TRAINING);
  return progress;
}

// A data-selection scoring report: no step yet, the examples scored so far instead.
v1::Progress ScoringProgressFromUpdate(const v1::TrainerUpdate& update, absl::Time now) {
  v1::Progress progress;
  progress.set_phase(v1::Progress::SCORING);
  progress.set_scored_examples(update.scored_examples());
  progress.set_total_examples(update.total_examples());
  progress.set_elapsed_seconds(update.elapsed_seconds());
  if (update.total_examples() > 0) {
    progress.set_ratio(
        std::min(1.0, static_cast<double>(update.scored_examples()) / update.total_examples()));
  }
  SetTimestamp(now, *progress.mutable_update_time());
  return progress;
}

// Every tenant call that names a job has it in a field `id`. A string that is not a job id's
// one spelling (job_store_rows.h's ParseJobId) is a bad argument, not an unknown job.
absl::Status CheckJobIdField(const std::string& job_id) {
  if (ParseJobId(job_id).has_value()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("id: must be a job id like \"17\", got \"",
                                                 absl::CHexEscape(BoundedText(job_id, 64)), "\""));
}

// Re-registration is the cure for both: the worker is unknown, or it was declared LOST.
bool NeedsRegistration(const absl::Status& status) {
  return absl::IsNotFound(status) || absl::IsFailedPrecondition(status);
}

}  // namespace

Scheduler::Scheduler(JobStore& store, ServerMetrics& metrics, const Clock& clock,
                     SchedulerOptions options)
    : store_(store), metrics_(metrics), clock_(clock), options_(options) {}

Scheduler::~Scheduler() { Stop(); }

absl::Status Scheduler::Start() {
  const absl::Time now = clock_.Now();
  TL_ASSIGN_OR_RETURN(const std::string key,
                      store_.ServerKey(kWorkerTokensKey, WorkerTokens::kKeyBytes));
  tokens_ = WorkerTokens(key);
  std::vector<v1::WorkerInfo> infos;
  TL_ASSIGN_OR_RETURN(const std::vector<v1::Worker> workers, store_.ListWorkers(&infos));
  TL_ASSIGN_OR_RETURN(const std::vector<AttemptRecord> running, store_.ListRunningAttempts());
  {
    absl::MutexLock lock(&mu_);
    if (started_) return absl::FailedPreconditionError("the scheduler is already started");
    started_ = true;
    std::map<std::string, absl::Time> last_heartbeats;
    for (size_t i = 0; i < workers.size(); ++i) {
      const v1::Worker& worker = workers[i];
      if (worker.state() == v1::Worker::LOST || worker.state() == v1::Worker::GONE) continue;
      last_heartbeats[worker.id()] = FromTimestamp(worker.last_heartbeat_time());
      // A worker from before a restart gets one heartbeat timeout to show up again, with all it
      // registered with (its rendezvous address and on-demand price too).
      WorkerEntry& entry = workers_[worker.id()];
      entry.info = infos[i];
      entry.last_contact = now;
      metrics_.SetWorker(worker.id(), worker.price_per_gpu_hour(), worker.spot(), worker.gpus());
    }
    for (const AttemptRecord& record : running) {
      AddRunningLocked(record);
      RunningAttempt& attempt = running_[record.job.id()];
      // What was billed before the server went down, cut back to the worker's last recorded
      // contact: the downtime itself is never billed.
      absl::Duration billed = absl::Seconds(record.attempt.seconds());
      auto heartbeat = last_heartbeats.find(record.attempt.worker_id());
      if (heartbeat != last_heartbeats.end()) {
        billed = std::clamp(heartbeat->second - attempt.lease_start, absl::ZeroDuration(), billed);
      }
      // Every worker of a gang (rank 0's first) must still be there.
      const GangMember* gone = nullptr;
      for (const GangMember& member : attempt.members) {
        if (gone == nullptr && last_heartbeats.count(member.worker_id) == 0) gone = &member;
      }
      if (gone != nullptr) {
        // A worker is gone for good: the attempt ended when it was last billed.
        LoseAttemptLocked(
            record.job.id(), attempt.lease_start + billed,
            absl::StrCat("worker ", gone->worker_id, " was gone when the server restarted"));
        continue;
      }
      attempt.billing_start = now - billed;  // billing resumes where it stopped
      attempt.last_seen = now;
    }
    TL_LOG(INFO) << "scheduler started: " << workers_.size() << " workers, " << running_.size()
                 << " running attempts";
  }
  RefreshGauges();
  if (options_.start_ticker) ticker_ = std::thread([this] { RunTicker(); });
  return absl::OkStatus();
}

void Scheduler::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  watch_hub_.CloseAll();
  if (ticker_.joinable()) ticker_.join();
}

bool Scheduler::stopping() const {
  absl::MutexLock lock(&mu_);
  return stopping_;
}

void Scheduler::RunTicker() {
  const absl::Duration period = options_.tick_interval > absl::ZeroDuration()
                                    ? options_.tick_interval
                                    : options_.report_interval / 2;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), period)) return;
    }
    Tick();
  }
}

void Scheduler::Tick() {
  std::vector<QueuedBill> bills;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_.Now();
    ExpireWorkersLocked(now);
    bills = QueueAccrualLocked(now);
    ExplainWaitingLocked();
  }
  SettleAccrual(std::move(bills));
  RefreshGauges();
  RefreshCostQualityGauges();
  metrics_.RemoveExpired();
}

// ---- Jobs ----

absl::StatusOr<Scheduler::CheckedJob> Scheduler::CheckedSpec(const std::string& tenant,
                                                             const v1::JobSpec& spec) {
  TL_RETURN_IF_ERROR(ValidateJobSpec(spec));
  CheckedJob checked;
  TL_ASSIGN_OR_RETURN(checked.spec, ConfineJobPaths(spec, options_.data_roots, tenant));
  checked.stamps = TakeInputStamps(checked.spec);
  if (options_.check_inputs) {
    TL_RETURN_IF_ERROR(ValidateJobInputs(checked.spec, checked.stamps, input_checks_));
  }
  return checked;
}

v1::BaseModel Scheduler::BaseModelOf(const std::string& model_path, const std::string& stamp) {
  if (stamp.empty()) return ReadBaseModel(model_path);
  return *base_models_.GetOrRead(model_path, stamp, [&] {
    return std::make_shared<const v1::BaseModel>(ReadBaseModel(model_path));
  });
}

std::shared_ptr<const std::vector<WorkerGroup>> Scheduler::EstimateWorkers() {
  absl::MutexLock lock(&mu_);
  if (estimate_workers_ == nullptr) {
    std::vector<v1::Worker> workers;
    workers.reserve(workers_.size());
    // Every worker in workers_ is active; the estimate does not tell IDLE from BUSY.
    for (const auto& [id, entry] : workers_) {
      workers.push_back(WorkerFromInfo(id, entry.info, v1::Worker::IDLE));
    }
    estimate_workers_ =
        std::make_shared<const std::vector<WorkerGroup>>(GroupActiveWorkers(workers));
  }
  return estimate_workers_;
}

absl::StatusOr<std::shared_ptr<const std::vector<SucceededRun>>> Scheduler::EstimateHistory() {
  int64_t succeeded = 0;
  {
    absl::MutexLock lock(&estimate_mu_);
    if (history_read_at_ == jobs_succeeded_) return history_;
    succeeded = jobs_succeeded_;
  }
  TL_ASSIGN_OR_RETURN(std::vector<SucceededRun> runs,
                      store_.ListSucceededRuns(kEstimateHistoryJobs));
  auto history = std::make_shared<const std::vector<SucceededRun>>(std::move(runs));
  absl::MutexLock lock(&estimate_mu_);
  // A job that succeeded during the read makes the next estimate read again.
  history_read_at_ = succeeded;
  history_ = history;
  return history;
}

v1::JobEstimate Scheduler::EstimateOf(const v1::JobSpec& spec, const InputStamps& stamps) {
  // Every input is kept between submits: reading and parsing a thousand workers and a thousand
  // past jobs on every submit made the submit path CPU-bound (and so did counting a thousand
  // workers into classes: they are kept grouped), and parsing a real model's
  // tokenizer.json and counting the train file again held 16 clients to 15 submits/s
  // (bench/README.md).
  const std::shared_ptr<const std::vector<WorkerGroup>> workers = EstimateWorkers();
  std::vector<std::string> problems;
  absl::StatusOr<std::shared_ptr<const std::vector<SucceededRun>>> past = EstimateHistory();
  if (!past.ok()) {
    problems.push_back(absl::StrCat("Past jobs could not be read (", past.status().ToString(),
                                    "): every class is a cold start."));
    past = std::make_shared<const std::vector<SucceededRun>>();
  }
  EstimatorOptions options;
  options.file_cache = &estimate_files_;
  options.model_stamp = stamps.model;
  options.train_stamp = stamps.train;
  v1::JobEstimate estimate = BuildJobEstimate(spec, *workers, **past, clock_.Now(), options);
  for (std::string& problem : problems) estimate.add_notes(std::move(problem));
  return estimate;
}

absl::StatusOr<v1::JobEstimate> Scheduler::EstimateJob(const std::string& tenant,
                                                       const v1::JobSpec& spec) {
  TL_ASSIGN_OR_RETURN(const CheckedJob checked, CheckedSpec(tenant, spec));
  return EstimateOf(WithDefaults(checked.spec), checked.stamps);
}

absl::StatusOr<EnqueueResult> Scheduler::SubmitJob(const std::string& tenant,
                                                   const v1::JobSpec& spec,
                                                   v1::JobEstimate* estimate) {
  TL_ASSIGN_OR_RETURN(const CheckedJob checked, CheckedSpec(tenant, spec));
  const v1::JobSpec with_defaults = WithDefaults(checked.spec);
  JobSubmitFacts facts;
  facts.base_model = BaseModelOf(checked.spec.model_path(), checked.stamps.model);
  facts.estimate = EstimateOf(with_defaults, checked.stamps);
  TL_ASSIGN_OR_RETURN(
      EnqueueResult result,
      store_.Enqueue(tenant, with_defaults, options_.max_queued_jobs_per_tenant, facts));
  if (result.deduplicated) {
    if (estimate != nullptr) {
      TL_ASSIGN_OR_RETURN(JobSubmitFacts first, store_.GetSubmitFacts(result.update.job.id()));
      *estimate = std::move(first.estimate);
    }
    return result;
  }
  if (estimate != nullptr) *estimate = std::move(facts.estimate);
  TL_LOG(INFO) << "job " << result.update.job.id() << " submitted by tenant " << tenant
               << " (priority " << result.update.job.spec().priority() << ")";
  metrics_.OnSubmitted(tenant);
  {
    absl::MutexLock lock(&mu_);
    ++queue_generation_;  // wakes long polls
  }
  Announce(result.update);
  return result;
}

absl::StatusOr<v1::Job> Scheduler::GetOwnedJob(const std::string& tenant,
                                               const std::string& job_id) {
  TL_RETURN_IF_ERROR(CheckJobIdField(job_id));
  TL_ASSIGN_OR_RETURN(v1::Job job, store_.GetJob(job_id));
  if (job.tenant() != tenant) {
    return absl::PermissionDeniedError(absl::StrCat("job ", job_id, " belongs to another tenant"));
  }
  return job;
}

absl::StatusOr<v1::Job> Scheduler::GetJob(const std::string& tenant, const std::string& job_id) {
  return GetOwnedJob(tenant, job_id);
}

absl::StatusOr<JobPage> Scheduler::ListJobs(const std::string& tenant,
                                            const std::vector<v1::Job::State>& states,
                                            int page_size, const std::string& page_token) {
  if (page_size < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size: must be >= 0 (0 = ", kDefaultPageSize, "), got ", page_size));
  }
  for (size_t i = 0; i < states.size(); ++i) {
    // An unknown value filtered nothing out and matched nothing: an empty list, as if the
    // tenant had no jobs. STATE_UNSPECIFIED is no job's state either.
    if (states[i] == v1::Job::STATE_UNSPECIFIED || !v1::Job::State_IsValid(states[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat("states[", i, "]: unknown value ", static_cast<int>(states[i]),
                       " (known: QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)"));
    }
  }
  JobQuery query;
  query.tenant = tenant;
  query.states = states;
  query.page_size = page_size == 0 ? kDefaultPageSize : std::min(page_size, kMaxPageSize);
  query.page_token = page_token;
  return store_.ListJobs(query);
}

absl::StatusOr<v1::Job> Scheduler::CancelJob(const std::string& tenant, const std::string& job_id,
                                             const std::string& message) {
  TL_RETURN_IF_ERROR(GetOwnedJob(tenant, job_id).status());
  absl::StatusOr<v1::Job> job;
  {
    absl::MutexLock lock(&mu_);
    job = CancelLocked(job_id, v1::Job::USER, message.empty() ? "cancelled by the user" : message);
  }
  return job;
}

absl::StatusOr<std::vector<v1::JobEvent>> Scheduler::ListJobEvents(const std::string& tenant,
                                                                   const std::string& job_id) {
  TL_RETURN_IF_ERROR(GetOwnedJob(tenant, job_id).status());
  return store_.ListJobEvents(job_id);
}

absl::StatusOr<v1::ProgressHistory> Scheduler::GetProgressHistory(const std::string& tenant,
                                                                  const std::string& job_id) {
  TL_RETURN_IF_ERROR(GetOwnedJob(tenant, job_id).status());
  TL_ASSIGN_OR_RETURN(std::vector<v1::Progress> points, store_.ListProgressHistory(job_id));
  v1::ProgressHistory history;
  history.set_job_id(job_id);
  for (v1::Progress& point : points) *history.add_points() = std::move(point);
  return history;
}

absl::StatusOr<v1::CostReport> Scheduler::GetCostReport(const std::string& tenant,
                                                        const std::string& job_id) {
  TL_ASSIGN_OR_RETURN(v1::Job job, GetOwnedJob(tenant, job_id));
  return CostReportOf(std::move(job));
}

absl::StatusOr<v1::CostReport> Scheduler::CostReportOf(v1::Job job) {
  const std::string job_id = job.id();
  TL_ASSIGN_OR_RETURN(std::vector<v1::AttemptCost> attempts, store_.ListAttempts(job_id));
  TL_ASSIGN_OR_RETURN(const JobSubmitFacts facts, store_.GetSubmitFacts(job_id));
  {
    absl::MutexLock lock(&mu_);
    auto it = running_.find(job_id);
    if (it != running_.end()) {
      // The running attempt as of now, not as of its last report.
      const AttemptBill bill = ComputeBill(it->second, clock_.Now());
      for (v1::AttemptCost& attempt : attempts) {
        if (attempt.attempt() != it->second.attempt) continue;
        attempt.set_seconds(bill.seconds);
        attempt.set_gpu_hours(bill.gpu_hours);
        attempt.set_usd(bill.usd);
      }
      *job.mutable_cost() = bill.job_cost;
    }
  }
  return BuildCostReport(job, attempts, facts.estimate, facts.base_model);
}

absl::StatusOr<v1::ParetoFront> Scheduler::GetParetoFront(
    const std::string& tenant, const std::map<std::string, std::string>& labels) {
  JobQuery query;
  query.tenant = tenant;
  query.states = {v1::Job::SUCCEEDED, v1::Job::FAILED, v1::Job::CANCELLED};
  query.page_size = kMaxPageSize;
  v1::ParetoFront front;
  std::vector<v1::ParetoPoint> points;
  int read = 0;
  do {
    TL_ASSIGN_OR_RETURN(JobPage page, store_.ListJobs(query));
    query.page_token = page.next_page_token;
    for (const v1::Job& job : page.jobs) {
      if (read == kParetoMaxJobs) {
        front.set_truncated(true);
        query.page_token.clear();
        break;
      }
      ++read;
      const bool matches = std::all_of(labels.begin(), labels.end(), [&job](const auto& label) {
        auto it = job.spec().labels().find(label.first);
        return it != job.spec().labels().end() && it->second == label.second;
      });
      if (!matches) continue;
      if (!job.progress().has_eval_loss()) {
        front.set_jobs_without_eval_loss(front.jobs_without_eval_loss() + 1);
        continue;
      }
      // A finished job's bill is final: the cost report's totals, computed the one way.
      TL_ASSIGN_OR_RETURN(const std::vector<v1::AttemptCost> attempts,
                          store_.ListAttempts(job.id()));
      const v1::CostReport report = BuildCostReport(job, attempts);
      v1::ParetoPoint& point = points.emplace_back();
      point.set_job_id(job.id());
      point.set_name(job.spec().name());
      point.set_state(job.state());
      point.set_eval_loss(job.progress().eval_loss());
      point.set_total_usd(report.total_usd());
      point.set_compute_usd(report.compute_usd());
      *point.mutable_end_time() = job.end_time();
    }
  } while (!query.page_token.empty());
  MarkParetoFront(points);
  for (v1::ParetoPoint& point : points) *front.add_points() = std::move(point);
  return front;
}

absl::StatusOr<std::vector<v1::Worker>> Scheduler::ListWorkers(const std::string& tenant) {
  TL_ASSIGN_OR_RETURN(std::vector<v1::Worker> workers, store_.ListWorkers());
  // Worker id -> the lowest id of the tenant's jobs running there.
  std::map<std::string, int64_t> own_jobs;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [job_id, running] : running_) {
      const std::optional<int64_t> id = ParseJobId(job_id);
      if (running.tenant != tenant || !id.has_value()) continue;
      auto [it, inserted] = own_jobs.emplace(running.worker_id, *id);
      if (!inserted) it->second = std::min(it->second, *id);
    }
  }
  for (v1::Worker& worker : workers) {
    auto own = own_jobs.find(worker.id());
    worker.set_job_id(own == own_jobs.end() ? "" : absl::StrCat(own->second));
  }
  return workers;
}

absl::StatusOr<Scheduler::Watch> Scheduler::WatchJob(const std::string& tenant,
                                                     const std::string& job_id) {
  Watch watch;
  watch.updates = watch_hub_.Subscribe(job_id);
  TL_ASSIGN_OR_RETURN(watch.snapshot, GetOwnedJob(tenant, job_id));
  return watch;
}

// ---- Workers ----

absl::StatusOr<v1::RegisterWorkerResponse> Scheduler::RegisterWorker(
    const v1::WorkerInfo& info, const std::string& credential) {
  std::vector<std::string> problems;
  if (!(std::isfinite(info.price_per_gpu_hour()) && info.price_per_gpu_hour() >= 0 &&
        info.price_per_gpu_hour() <= options_.max_price_per_gpu_hour)) {
    problems.push_back(
        absl::StrCat("info.price_per_gpu_hour: must be in [0, ", options_.max_price_per_gpu_hour,
                     "] (the server's --max-price-per-gpu-hour), got ", info.price_per_gpu_hour()));
  }
  const double on_demand = info.on_demand_price_per_gpu_hour();
  if (!(std::isfinite(on_demand) && on_demand >= 0 &&
        on_demand <= options_.max_price_per_gpu_hour)) {
    problems.push_back(absl::StrCat(
        "info.on_demand_price_per_gpu_hour: must be in [0, ", options_.max_price_per_gpu_hour,
        "] (0 = not declared; the server's --max-price-per-gpu-hour), got ", on_demand));
  }
  if (info.gpus() < 1 || info.gpus() > kMaxWorkerGpus) {
    problems.push_back(absl::StrCat("info.gpus: must be in [1, ", kMaxWorkerGpus,
                                    "] (1 for a CPU agent), got ", info.gpus()));
  }
  if (!problems.empty()) return absl::InvalidArgumentError(absl::StrJoin(problems, "; "));

  TL_ASSIGN_OR_RETURN(const v1::Worker worker, store_.RegisterWorker(info));
  {
    absl::MutexLock lock(&mu_);
    WorkerEntry& entry = workers_[worker.id()];
    entry.info = info;
    entry.last_contact = clock_.Now();
    estimate_workers_.reset();
  }
  TL_LOG(INFO) << "worker " << worker.id() << " registered with credential \"" << credential
               << "\": " << info.hostname() << ", " << info.gpus() << " x " << info.accelerator()
               << " at $" << info.price_per_gpu_hour() << "/GPU-hour"
               << (info.spot() ? " (spot)" : "");
  metrics_.SetWorker(worker.id(), info.price_per_gpu_hour(), info.spot(), info.gpus());

  v1::RegisterWorkerResponse response;
  response.set_worker_id(worker.id());
  response.set_heartbeat_interval_seconds(absl::ToDoubleSeconds(options_.heartbeat_interval));
  response.set_heartbeat_timeout_seconds(absl::ToDoubleSeconds(options_.heartbeat_timeout));
  response.set_report_interval_seconds(absl::ToDoubleSeconds(options_.report_interval));
  response.set_session_token(tokens_.Session(worker.id()));
  return response;
}

absl::Status Scheduler::CheckSession(const std::string& worker_id,
                                     const std::string& session_token) const {
  if (WorkerTokens::Matches(tokens_.Session(worker_id), session_token)) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat(
      "session_token is not the one issued to worker \"", worker_id, "\" (RegisterWorker)"));
}

absl::Status Scheduler::CheckLease(const std::string& job_id, int attempt,
                                   const std::string& worker_id,
                                   const std::string& lease_token) const {
  if (WorkerTokens::Matches(tokens_.Lease(job_id, attempt, worker_id), lease_token)) {
    return absl::OkStatus();
  }
  return absl::PermissionDeniedError(absl::StrCat("lease_token is not the one of job ", job_id,
                                                  " attempt ", attempt, " on worker \"", worker_id,
                                                  "\""));
}

absl::Status Scheduler::TouchWorkerLocked(const std::string& worker_id) {
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) {
    return absl::NotFoundError(absl::StrCat("worker \"", worker_id, "\" is not registered"));
  }
  // The worker spoke now, however long the durable write below takes (an fsync can stall for
  // seconds on a busy disk, and the ticker must not count that against the worker).
  it->second.last_contact = clock_.Now();
  return store_.TouchWorker(worker_id);
}

absl::StatusOr<v1::HeartbeatResponse> Scheduler::Heartbeat(const v1::HeartbeatRequest& request) {
  TL_RETURN_IF_ERROR(CheckSession(request.worker_id(), request.session_token()));
  v1::HeartbeatResponse response;
  // As TouchWorkerLocked, but the durable touch is awaited without mu_ (group commit).
  std::optional<PendingStatus> touch;
  {
    absl::MutexLock lock(&mu_);
    auto worker = workers_.find(request.worker_id());
    if (worker == workers_.end()) return response;  // known = false: re-register
    // The worker spoke now, however long the durable write below takes.
    worker->second.last_contact = clock_.Now();
    touch.emplace(store_.StartTouchWorker(request.worker_id()));
  }
  const absl::Status touched = std::move(*touch).Wait().status();
  if (NeedsRegistration(touched)) return response;  // known = false
  TL_RETURN_IF_ERROR(touched);
  absl::MutexLock lock(&mu_);
  // Declared LOST while the touch was written: it must register again.
  if (workers_.count(request.worker_id()) == 0) return response;
  response.set_known(true);

  const std::set<std::string> reported(request.running_job_ids().begin(),
                                       request.running_job_ids().end());
  ReconcileLocked(request.worker_id(), reported, clock_.Now());
  for (const std::string& job_id : reported) {
    auto revoked = revoked_.find(job_id);
    auto running = running_.find(job_id);
    const bool revoked_here =
        revoked != revoked_.end() && revoked->second.worker_id == request.worker_id();
    const bool running_here =
        running != running_.end() && IsMember(running->second, request.worker_id());
    // Cancelled, or no longer this worker's (its lease expired and the job moved on).
    if (revoked_here || !running_here) response.add_cancel_job_ids(job_id);
  }
  // A revoked attempt the worker no longer runs needs no more delivery.
  for (auto it = revoked_.begin(); it != revoked_.end();) {
    if (it->second.worker_id == request.worker_id() && reported.count(it->first) == 0) {
      it = revoked_.erase(it);
    } else {
      ++it;
    }
  }
  return response;
}

absl::Status Scheduler::DeregisterWorker(const v1::DeregisterWorkerRequest& request) {
  TL_RETURN_IF_ERROR(CheckSession(request.worker_id(), request.session_token()));
  absl::MutexLock lock(&mu_);
  if (workers_.count(request.worker_id()) == 0) return absl::OkStatus();  // already gone
  TL_LOG(INFO) << "worker " << request.worker_id() << " deregistered";
  RemoveWorkerLocked(request.worker_id(), v1::Worker::GONE, clock_.Now(),
                     absl::StrCat("worker ", request.worker_id(), " stopped"));
  ++queue_generation_;
  return absl::OkStatus();
}

void Scheduler::ReconcileLocked(const std::string& worker_id, const std::set<std::string>& reported,
                                absl::Time now) {
  const absl::Duration grace = std::min(kLeaseDeliveryGrace, options_.heartbeat_interval);
  std::vector<std::pair<std::string, absl::Time>> missing;  // job id, billed up to
  auto on_worker = running_by_worker_.find(worker_id);
  if (on_worker == running_by_worker_.end()) return;
  for (const std::string& job_id : on_worker->second) {
    RunningAttempt& running = running_.at(job_id);
    if (reported.count(job_id) > 0) {
      running.last_seen = now;
    } else if (now - running.lease_start >= grace) {
      missing.emplace_back(job_id, running.last_seen.value_or(running.lease_start));
    }
  }
  for (const auto& [job_id, last_seen] : missing) {
    LoseAttemptLocked(job_id, last_seen,
                      absl::StrCat("worker ", worker_id,
                                   " does not run this attempt (its heartbeat does not list it): "
                                   "the lease never reached it, or the attempt ended unreported"));
  }
}

int Scheduler::FreeGpusLocked(const std::string& worker_id) const {
  auto worker = workers_.find(worker_id);
  if (worker == workers_.end()) return 0;
  return std::max(0, worker->second.info.gpus() - HeldGpusLocked(worker_id));
}

int Scheduler::HeldGpusLocked(const std::string& worker_id) const {
  int held = 0;
  for (const auto& [job_id, running] : running_) {
    for (const GangMember& member : running.members) {
      if (member.worker_id == worker_id) held += member.gpus;
    }
  }
  if (forming_gang_) {
    for (const GangMember& member : forming_gang_->members) {
      if (member.worker_id == worker_id) held += member.gpus;
    }
  }
  return held;
}

void Scheduler::EraseRunningLocked(std::map<std::string, RunningAttempt>::iterator it) {
  auto on_worker = running_by_worker_.find(it->second.worker_id);
  if (on_worker != running_by_worker_.end()) {
    on_worker->second.erase(it->first);
    if (on_worker->second.empty()) running_by_worker_.erase(on_worker);
  }
  running_.erase(it);
}

bool Scheduler::IsMember(const RunningAttempt& running, const std::string& worker_id) {
  if (running.worker_id == worker_id) return true;
  return std::any_of(running.members.begin(), running.members.end(),
                     [&](const GangMember& member) { return member.worker_id == worker_id; });
}

void Scheduler::AddRunningLocked(const AttemptRecord& record) {
  if (auto before = running_.find(record.job.id()); before != running_.end()) {
    EraseRunningLocked(before);
  }
  RunningAttempt& running = running_[record.job.id()];
  running_by_worker_[record.attempt.worker_id()].insert(record.job.id());
  running.job_id = record.job.id();
  running.attempt = record.attempt.attempt();
  running.tenant = record.job.tenant();
  running.worker_id = record.attempt.worker_id();
  running.pricing = AttemptPricing{record.attempt.price_per_gpu_hour(), record.attempt.gpus(),
                                   record.attempt.spot()};
  running.lease_start = FromTimestamp(record.attempt.start_time());
  running.billing_start = running.lease_start;
  running.prior_usd = std::max(0.0, record.job.cost().accrued_usd() - record.attempt.usd());
  running.prior_gpu_hours =
      std::max(0.0, record.job.cost().gpu_hours() - record.attempt.gpu_hours());
  running.metered_usd = record.attempt.usd();
  running.budget = record.job.spec().budget();
  running.budget_state = record.budget;
  running.step = record.job.progress().step();
  running.total_steps = record.job.progress().total_steps();
  running.members.clear();
  for (const auto& [worker_id, gpus] : record.placement.members) {
    running.members.push_back(GangMember{worker_id, gpus});
  }
  if (running.members.empty()) {  // one worker with all the attempt's GPUs
    running.members = {GangMember{running.worker_id, running.pricing.gpus}};
  }
  running.rendezvous_slot = record.placement.rendezvous_slot;
}

absl::StatusOr<v1::LeaseJobResponse> Scheduler::LeaseJob(const v1::LeaseJobRequest& request,
                                                         const std::string& credential,
                                                         const std::function<bool()>& caller_gone) {
  TL_RETURN_IF_ERROR(CheckSession(request.worker_id(), request.session_token()));
  absl::Duration wait = std::clamp(absl::Seconds(request.wait_seconds()), absl::ZeroDuration(),
                                   options_.max_lease_wait);
  absl::StatusOr<v1::LeaseJobResponse> response;
  absl::MutexLock lock(&mu_);
  // Admission: a poll over a limit is answered at once, so long polls never take every thread.
  auto worker = workers_.find(request.worker_id());
  auto by_credential = waiting_polls_by_credential_.find(credential);
  const int credential_polls =
      by_credential == waiting_polls_by_credential_.end() ? 0 : by_credential->second;
  const bool admitted = worker != workers_.end() && worker->second.waiting_polls == 0 &&
                        waiting_polls_ < options_.max_waiting_lease_polls &&
                        credential_polls < options_.max_waiting_lease_polls_per_credential;
  if (admitted) {
    ++worker->second.waiting_polls;
    ++waiting_polls_;
    ++waiting_polls_by_credential_[credential];
  } else {
    wait = absl::ZeroDuration();
  }
  const absl::Time deadline = absl::Now() + wait;  // wall time: bounds the RPC, decides nothing
  response = LeaseJobLocked(request, deadline, caller_gone);
  if (admitted) {
    // The worker may have been declared LOST (and erased) while this poll waited.
    if (auto still = workers_.find(request.worker_id()); still != workers_.end()) {
      --still->second.waiting_polls;
    }
    --waiting_polls_;
    if (--waiting_polls_by_credential_[credential] <= 0) {
      waiting_polls_by_credential_.erase(credential);
    }
  }
  return response;
}

absl::StatusOr<v1::LeaseJobResponse> Scheduler::LeaseJobLocked(
    const v1::LeaseJobRequest& request, absl::Time deadline,
    const std::function<bool()>& caller_gone) {
  v1::LeaseJobResponse response;
  const absl::Status touched = TouchWorkerLocked(request.worker_id());
  if (NeedsRegistration(touched)) return response;  // known = false
  TL_RETURN_IF_ERROR(touched);
  response.set_known(true);

  while (!stopping_ && !caller_gone()) {
    // A gang this worker joined was leased while it was away.
    if (auto waiting = gang_leases_.find(request.worker_id()); waiting != gang_leases_.end()) {
      *response.mutable_lease() = std::move(waiting->second);
      gang_leases_.erase(waiting);
      break;
    }
    ExpireGangLocked(clock_.Now());
    const bool in_gang =
        forming_gang_ && std::any_of(forming_gang_->members.begin(), forming_gang_->members.end(),
                                     [&](const GangMember& member) {
                                       return member.worker_id == request.worker_id();
                                     });
    if (!in_gang) {
      TL_ASSIGN_OR_RETURN(std::optional<AttemptRecord> record,
                          store_.LeaseNext(request.worker_id(), FreeGpusLocked(request.worker_id()),
                                           RendezvousSlotLocked(request.worker_id())));
      if (record.has_value()) {
        // The job the forming gang waited for went to one worker with the GPUs for it.
        if (forming_gang_ && forming_gang_->job_id == record->job.id()) forming_gang_.reset();
        TL_ASSIGN_OR_RETURN(std::vector<v1::Lease> leases,
                            StartLeasedLocked(*record, {GangMember{request.worker_id(),
                                                                   record->job.spec().gpus()}}));
        *response.mutable_lease() = std::move(leases.front());
        break;
      }
      TL_ASSIGN_OR_RETURN(std::optional<v1::Lease> gang_lease, JoinGangLocked(request.worker_id()));
      if (gang_lease.has_value()) {
        *response.mutable_lease() = *std::move(gang_lease);
        break;
      }
    }
    const int64_t generation = queue_generation_;
    auto changed = [this, generation]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return stopping_ || queue_generation_ != generation;
    };
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) break;
    // Wake now and then even without news, to notice a worker that hung up.
    mu_.AwaitWithTimeout(absl::Condition(&changed), std::min(left, kHangUpCheckPeriod));
  }
  return response;
}

int Scheduler::RendezvousSlotLocked(const std::string& primary) const {
  std::set<int> taken;
  for (const auto& [job_id, other] : running_) {
    if (other.worker_id == primary) taken.insert(other.rendezvous_slot);
  }
  int slot = 0;
  while (taken.count(slot) > 0) ++slot;
  return slot;
}

absl::StatusOr<std::vector<v1::Lease>> Scheduler::StartLeasedLocked(
    const AttemptRecord& record, std::vector<GangMember> members) {
  const std::string& primary = members.front().worker_id;
  const int slot = record.placement.rendezvous_slot;
  AddRunningLocked(record);
  RunningAttempt& running = running_[record.job.id()];
  running.members = members;
  running.rendezvous_slot = slot;
  // Bill from the first instant, so that the job shows its rate at once.
  TL_ASSIGN_OR_RETURN(const JobUpdate billed, BillLocked(running, clock_.Now(), std::nullopt));
  Announce(JobUpdate{billed.job, record.events});
  const int world_size = record.job.spec().gpus();
  std::string rendezvous;
  if (world_size > 1) {
    const v1::WorkerInfo& info = workers_.at(primary).info;
    // An agent that declares no port base listens from the agent's default (worker_main.cc).
    constexpr int kDefaultRendezvousPortBase = 29500;
    const int base =
        info.rendezvous_port_base() > 0 ? info.rendezvous_port_base() : kDefaultRendezvousPortBase;
    rendezvous =
        absl::StrCat(info.rendezvous_host().empty() ? info.hostname() : info.rendezvous_host(), ":",
                     base + slot);
  }
  TL_LOG(INFO) << "job " << record.job.id() << " attempt " << running.attempt << " leased to "
               << absl::StrJoin(members, ", ",
                                [](std::string* out, const GangMember& member) {
                                  absl::StrAppend(out, member.worker_id, " (", member.gpus,
                                                  member.gpus == 1 ? " GPU)" : " GPUs)");
                                })
               << (world_size > 1 ? absl::StrCat(", rendezvous ", rendezvous) : "")
               << (record.job.last_checkpoint().empty()
                       ? ""
                       : absl::StrCat(", resuming from ", record.job.last_checkpoint()));
  std::vector<v1::Lease> leases;
  int next_rank = 0;
  for (const GangMember& member : members) {
    v1::Lease& lease = leases.emplace_back();
    lease.set_job_id(record.job.id());
    lease.set_attempt(running.attempt);
    *lease.mutable_spec() = record.job.spec();
    lease.set_resume_checkpoint(record.job.last_checkpoint());
    lease.set_report_interval_seconds(absl::ToDoubleSeconds(options_.report_interval));
    if (world_size > 1) {
      for (int i = 0; i < member.gpus; ++i) lease.add_ranks(next_rank++);
      lease.set_world_size(world_size);
      lease.set_rendezvous(rendezvous);
    }
    // Rank 0's worker alone reports and finishes the attempt.
    if (member.worker_id == primary) {
      lease.set_lease_token(tokens_.Lease(lease.job_id(), lease.attempt(), primary));
    }
  }
  return leases;
}

void Scheduler::ExpireGangLocked(absl::Time now) {
  if (!forming_gang_ || now < forming_gang_->deadline) return;
  int gathered = 0;
  for (const GangMember& member : forming_gang_->members) gathered += member.gpus;
  TL_LOG(INFO) << "job " << forming_gang_->job_id << ": gang let go after "
               << absl::FormatDuration(options_.gang_timeout) << " with " << gathered << " of "
               << forming_gang_->gpus << " GPUs gathered";
  forming_gang_.reset();
  ++queue_generation_;  // its workers may take other work now
}

absl::StatusOr<std::optional<v1::Lease>> Scheduler::JoinGangLocked(const std::string& worker_id) {
  const int free = FreeGpusLocked(worker_id);
  if (free <= 0) return std::nullopt;
  const std::string& accelerator = workers_.at(worker_id).info.accelerator();
  if (forming_gang_ && forming_gang_->accelerator != accelerator) return std::nullopt;
  if (!forming_gang_) {
    // The free GPUs of workers like this one: one pass over the running attempts (no gang is
    // forming, so nothing else holds GPUs), not one per worker, as idle polls come here often.
    int capacity = 0;
    for (const auto& [id, worker] : workers_) {
      if (worker.info.accelerator() == accelerator) capacity += worker.info.gpus();
    }
    for (const auto& [job_id, running] : running_) {
      for (const GangMember& member : running.members) {
        auto worker = workers_.find(member.worker_id);
        if (worker != workers_.end() && worker->second.info.accelerator() == accelerator) {
          capacity -= member.gpus;
        }
      }
    }
    TL_ASSIGN_OR_RETURN(std::optional<GangJob> job, store_.NextGangJob(free, capacity));
    if (!job.has_value()) return std::nullopt;
    forming_gang_ =
        FormingGang{job->job_id, job->gpus, accelerator, {}, clock_.Now() + options_.gang_timeout};
    TL_LOG(INFO) << "job " << job->job_id << ": gathering a gang of " << job->gpus << " GPUs";
  }
  int gathered = 0;
  for (const GangMember& member : forming_gang_->members) gathered += member.gpus;
  forming_gang_->members.push_back(
      GangMember{worker_id, std::min(free, forming_gang_->gpus - gathered)});
  gathered += forming_gang_->members.back().gpus;
  if (gathered < forming_gang_->gpus) return std::nullopt;
  FormingGang gang = *std::move(forming_gang_);
  forming_gang_.reset();
  return LeaseGangLocked(std::move(gang), worker_id);
}

absl::StatusOr<std::optional<v1::Lease>> Scheduler::LeaseGangLocked(FormingGang gang,
                                                                    const std::string& caller) {
  // Billed at the members' prices weighted by the GPUs each gives; spot when any member is
  // (losing it ends the whole gang).
  GangPricing pricing;
  for (const GangMember& member : gang.members) {
    const v1::WorkerInfo& info = workers_.at(member.worker_id).info;
    const double share = static_cast<double>(member.gpus) / gang.gpus;
    pricing.price_per_gpu_hour += share * info.price_per_gpu_hour();
    pricing.on_demand_price_per_gpu_hour += share * info.on_demand_price_per_gpu_hour();
    pricing.spot = pricing.spot || info.spot();
  }
  AttemptPlacement placement;
  for (const GangMember& member : gang.members) {
    placement.members.emplace_back(member.worker_id, member.gpus);
  }
  placement.rendezvous_slot = RendezvousSlotLocked(gang.members.front().worker_id);
  TL_ASSIGN_OR_RETURN(
      std::optional<AttemptRecord> record,
      store_.LeaseToGang(gang.job_id, gang.members.front().worker_id, pricing, placement));
  if (!record.has_value()) return std::nullopt;  // cancelled meanwhile
  TL_ASSIGN_OR_RETURN(std::vector<v1::Lease> leases, StartLeasedLocked(*record, gang.members));
  std::optional<v1::Lease> own;
  for (size_t i = 0; i < leases.size(); ++i) {
    if (gang.members[i].worker_id == caller) {
      own = std::move(leases[i]);
    } else {
      gang_leases_[gang.members[i].worker_id] = std::move(leases[i]);
    }
  }
  ++queue_generation_;  // wakes the members' waiting polls
  return own;
}

absl::Status Scheduler::ReportProgress(const v1::ProgressReport& report) {
  TL_RETURN_IF_ERROR(
      CheckLease(report.job_id(), report.attempt(), report.worker_id(), report.lease_token()));
  // The bill is decided, metered and its write queued under mu_ (so writes keep the order of
  // the decisions), and its fsync is awaited without mu_, so that reports of many workers share
  // one commit. mu_ is taken again only when the bill makes the budget act (a crossing, an
  // overrun, a cancel: rare), which it does on the durable bill. EVAL and CHECKPOINT reports
  // (rare) are recorded under mu_ as before. The part under mu_ runs for all the reports waiting
  // at once, on one of their callers' threads, which then waits for their commit and wakes each
  // caller once (IntakeReports).
  IntakeSlot slot;
  slot.report = &report;
  bool lead = false;
  {
    absl::MutexLock lock(&intake_mu_);
    intake_.push_back(&slot);
    if (intake_led_) {
      while (!slot.done && !slot.lead) slot.wake.Wait(&intake_mu_);
    } else {
      intake_led_ = true;
      slot.lead = true;
    }
    lead = slot.lead;
  }
  if (lead) IntakeReports(slot);
  TL_RETURN_IF_ERROR(slot.status);
  TL_ASSIGN_OR_RETURN(const JobUpdate billed, std::move(*slot.pending).Wait());
  Announce(billed);
  if (!slot.budget_acts) return absl::OkStatus();
  absl::MutexLock lock(&mu_);
  auto it = running_.find(report.job_id());
  // Ended while the bill was written: whatever ended it recorded the final bill.
  if (it == running_.end() || it->second.attempt != report.attempt()) return absl::OkStatus();
  return EnforceBudgetLocked(it->second, billed.job);
}

void Scheduler::IntakeReports(IntakeSlot& own) {
  std::vector<IntakeSlot*> batch;  // `own` among them
  {
    absl::MutexLock lock(&intake_mu_);
    batch.swap(intake_);
  }
  PendingWrite<JobUpdate>* last = nullptr;  // the last write queued
  {
    absl::MutexLock lock(&mu_);
    for (IntakeSlot* slot : batch) {
      absl::StatusOr<QueuedReport> queued = QueueReportLocked(*slot->report);
      if (!queued.ok()) {
        slot->status = queued.status();
        continue;
      }
      slot->budget_acts = queued->budget_acts;
      last = &slot->pending.emplace(
          store_.StartRecordProgress(slot->report->job_id(), std::move(queued->bill)));
    }
  }
  {
    // The reports that arrived meanwhile are queued by the first of them while these commit.
    absl::MutexLock lock(&intake_mu_);
    if (intake_.empty()) {
      intake_led_ = false;
    } else {
      IntakeSlot& next = *intake_.front();
      next.lead = true;
      next.wake.Signal();
    }
  }
  // Writes commit in the order they were queued: once the last is durable (or failed), so is
  // every other of the batch, and each caller, woken once, finds its own done.
  if (last != nullptr) last->AwaitCommit();
  absl::MutexLock lock(&intake_mu_);
  for (IntakeSlot* slot : batch) {
    // Its caller may return (and its slot go) once intake_mu_ is released.
    slot->done = true;
    if (slot != &own) slot->wake.Signal();
  }
}

absl::StatusOr<Scheduler::QueuedReport> Scheduler::QueueReportLocked(
    const v1::ProgressReport& report) {
  auto it = running_.find(report.job_id());
  if (it == running_.end() || it->second.attempt != report.attempt() ||
      it->second.worker_id != report.worker_id()) {
    const bool revoked = revoked_.count(report.job_id()) > 0;
    return absl::FailedPreconditionError(absl::StrCat(
        "job ", report.job_id(), " attempt ", report.attempt(), " is not running on worker ",
        report.worker_id(), revoked ? " (it was cancelled)" : ""));
  }
  const absl::Time now = clock_.Now();
  if (auto worker = workers_.find(report.worker_id()); worker != workers_.end()) {
    worker->second.last_contact = now;
  }
  RunningAttempt& running = it->second;
  running.last_seen = now;

  const v1::TrainerUpdate& update = report.update();
  std::optional<v1::Progress> progress;
  switch (update.kind()) {
    case v1::TrainerUpdate::PROGRESS: {
      running.step = update.step();
      running.total_steps = update.total_steps();
      running.step_rate.Observe(now, update.step());
      progress = ProgressFromUpdate(
          update, now,
          RemainingTime(update.step(), update.total_steps(), running.step_rate.StepsPerSecond()));
      metrics_.OnProgress(
          running.job_id, running.tenant,
          JobProgressSample{update.step(), update.loss(), update.tokens_per_second(),
                            update.tokens(), progress->ratio()});
      break;
    }
    case v1::TrainerUpdate::EVAL: {
      TL_ASSIGN_OR_RETURN(
          const JobUpdate recorded,
          store_.RecordEval(running.job_id, running.attempt, update.step(), update.eval_loss()));
      metrics_.OnEvalLoss(running.job_id, running.tenant, update.eval_loss());
      Announce(recorded);
      break;
    }
    case v1::TrainerUpdate::SCORING:
      progress = ScoringProgressFromUpdate(update, now);
      break;
    case v1::TrainerUpdate::CHECKPOINT: {
      TL_ASSIGN_OR_RETURN(const JobUpdate recorded,
                          store_.RecordCheckpoint(running.job_id, running.attempt, update.step(),
                                                  update.checkpoint_path()));
      Announce(recorded);
      break;
    }
    default:
      break;  // COST: the bill below is the whole report
  }
  QueuedReport queued;
  queued.bill = BillUpdateLocked(running, now, progress, /*contact=*/true);
  MeterLocked(running, queued.bill.bill.usd);
  const BudgetDecision decision = DecideBudgetLocked(running, queued.bill.bill.job_cost);
  queued.budget_acts = decision.Acts();
  return queued;
}

std::optional<v1::WorkerCommand> Scheduler::CommandFor(const std::string& job_id, int attempt) {
  absl::MutexLock lock(&mu_);
  auto it = revoked_.find(job_id);
  if (it == revoked_.end() || it->second.attempt != attempt) return std::nullopt;
  return it->second.command;
}

std::optional<int64_t> Scheduler::AwaitCommands(int64_t seen, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto issued = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stopping_ || command_generation_ != seen;
  };
  mu_.AwaitWithTimeout(absl::Condition(&issued), timeout);
  if (stopping_) return std::nullopt;
  return command_generation_;
}

absl::StatusOr<v1::FinishAttemptResponse> Scheduler::FinishAttempt(
    const v1::FinishAttemptRequest& request) {
  const std::string& job_id = request.job_id();
  TL_RETURN_IF_ERROR(
      CheckLease(job_id, request.attempt(), request.worker_id(), request.lease_token()));
  // A worker may only say why its trainer ended, never claim a reason that is the server's.
  const bool reason_fits = request.reason() == v1::Job::REASON_UNSPECIFIED ||
                           (request.reason() == v1::Job::EARLY_STOPPED &&
                            request.outcome() == v1::FinishAttemptRequest::SUCCEEDED) ||
                           (request.reason() == v1::Job::LOSS_DIVERGED &&
                            request.outcome() == v1::FinishAttemptRequest::FAILED);
  if (!reason_fits) {
    return absl::InvalidArgumentError(absl::StrCat(
        "reason: ", v1::Job::Reason_Name(request.reason()), " cannot end an attempt with outcome ",
        v1::FinishAttemptRequest::Outcome_Name(request.outcome()),
        " (EARLY_STOPPED goes with SUCCEEDED, LOSS_DIVERGED with FAILED)"));
  }
  absl::StatusOr<JobUpdate> update;
  {
    absl::MutexLock lock(&mu_);
    if (auto revoked = revoked_.find(job_id);
        revoked != revoked_.end() && revoked->second.attempt == request.attempt()) {
      // The server ended this attempt already (cancel) and billed it up to that instant.
      revoked_.erase(revoked);
      ++queue_generation_;  // its GPUs are free again
      return v1::FinishAttemptResponse();
    }
    auto it = running_.find(job_id);
    if (it == running_.end() || it->second.attempt != request.attempt() ||
        it->second.worker_id != request.worker_id()) {
      return absl::FailedPreconditionError(
          absl::StrCat("job ", job_id, " attempt ", request.attempt(), " is not running on worker ",
                       request.worker_id()));
    }
    const absl::Time now = clock_.Now();
    if (auto worker = workers_.find(request.worker_id()); worker != workers_.end()) {
      worker->second.last_contact = now;
    }
    RunningAttempt& running = it->second;
    if (request.final_update().kind() == v1::TrainerUpdate::PROGRESS) {
      const v1::TrainerUpdate& last = request.final_update();
      running.step = last.step();
      running.total_steps = last.total_steps();
      running.step_rate.Observe(now, last.step());
      TL_RETURN_IF_ERROR(
          BillLocked(running, now, ProgressFromUpdate(last, now, std::nullopt)).status());
    }

    AttemptEnd end;
    end.attempt = running.attempt;
    end.end_time = now;
    // A worker's words are stored bounded, whatever it sent.
    end.message = BoundedText(request.message(), kMaxAttemptMessageBytes);
    end.last_checkpoint = request.last_checkpoint();
    end.bill = ComputeBill(running, now);
    switch (request.outcome()) {
      case v1::FinishAttemptRequest::SUCCEEDED:
        end.outcome = "SUCCEEDED";
        update = store_.Finish(job_id, end, v1::Job::SUCCEEDED, request.reason(),
                               request.adapter_path());
        break;
      case v1::FinishAttemptRequest::FAILED:
        end.outcome = "FAILED";
        update = store_.Finish(job_id, end, v1::Job::FAILED,
                               request.reason() == v1::Job::LOSS_DIVERGED ? v1::Job::LOSS_DIVERGED
                                                                          : v1::Job::TRAINER_ERROR,
                               "");
        break;
      case v1::FinishAttemptRequest::PREEMPTED:
        end.outcome = "PREEMPTED";
        update = store_.Requeue(job_id, end);
        break;
      case v1::FinishAttemptRequest::CANCELLED:
        // Stopped without a cancel from the server: nobody asked to end the job, so it runs
        // again like a preempted attempt.
        end.outcome = "PREEMPTED";
        end.message = absl::StrCat("the worker stopped the attempt without a cancel",
                                   request.message().empty() ? "" : ": ", end.message);
        update = store_.Requeue(job_id, end);
        break;
      default:
        return absl::InvalidArgumentError(absl::StrCat(
            "outcome: must be SUCCEEDED, FAILED, PREEMPTED or CANCELLED, got ", request.outcome()));
    }
    TL_RETURN_IF_ERROR(update.status());
    const double delta = end.bill.usd - running.metered_usd;
    if (delta > 0) metrics_.AddComputeCost(running.tenant, delta);
    metrics_.AddPreemptionWaste(running.tenant, update->wasted_usd);
    TL_LOG(INFO) << "job " << job_id << " attempt " << end.attempt << " ended " << end.outcome
                 << " on " << request.worker_id() << "; job is "
                 << v1::Job::State_Name(update->job.state());
    EraseRunningLocked(it);
    ++queue_generation_;
    Announce(*update);
    if (IsFinalState(update->job.state())) OnJobEnded(update->job);
  }
  v1::FinishAttemptResponse response;
  if (update->job.state() == v1::Job::SUCCEEDED) {
    // The bill is final now: the card that goes beside the adapter.
    TL_ASSIGN_OR_RETURN(const v1::CostReport report, CostReportOf(update->job));
    response.set_cost_card_markdown(report.card_markdown());
  }
  return response;
}

// ---- Cost, budget, expiry ----

AttemptBill Scheduler::ComputeBill(const RunningAttempt& running, absl::Time until) const {
  v1::AttemptCost line;
  line.set_gpus(running.pricing.gpus);
  line.set_price_per_gpu_hour(running.pricing.price_per_gpu_hour);
  line.set_spot(running.pricing.spot);
  BillAttempt(std::max(absl::ZeroDuration(), until - running.billing_start), line);
  AttemptBill bill;
  bill.seconds = line.seconds();
  bill.gpu_hours = line.gpu_hours();
  bill.usd = line.usd();
  const double accrued = running.prior_usd + line.usd();
  bill.job_cost.set_accrued_usd(accrued);
  bill.job_cost.set_gpu_hours(running.prior_gpu_hours + line.gpu_hours());
  const double rate = RateUsdPerHour(running.pricing);
  bill.job_cost.set_rate_usd_per_hour(rate);
  bill.job_cost.set_projected_usd(ProjectedCostUsd(
      accrued, rate,
      RemainingTime(running.step, running.total_steps, running.step_rate.StepsPerSecond())));
  if (running.budget.has_usd()) bill.job_cost.set_budget_usd(running.budget.usd());
  return bill;
}

AttemptProgress Scheduler::BillUpdateLocked(const RunningAttempt& running, absl::Time until,
                                            const std::optional<v1::Progress>& progress,
                                            bool contact) const {
  AttemptProgress update;
  update.attempt = running.attempt;
  update.progress = progress;
  update.bill = ComputeBill(running, until);
  if (contact) update.worker_contact = until;
  if (progress.has_value() && progress->phase() == v1::Progress::SCORING) {
    update.scoring_report = until;
  }
  return update;
}

void Scheduler::MeterLocked(RunningAttempt& running, double usd) {
  const double delta = usd - running.metered_usd;
  if (delta > 0) {
    metrics_.AddComputeCost(running.tenant, delta);
    running.metered_usd = usd;
  }
}

absl::StatusOr<JobUpdate> Scheduler::BillLocked(RunningAttempt& running, absl::Time until,
                                                const std::optional<v1::Progress>& progress,
                                                bool contact) {
  const AttemptProgress update = BillUpdateLocked(running, until, progress, contact);
  TL_ASSIGN_OR_RETURN(JobUpdate recorded, store_.RecordProgress(running.job_id, update));
  MeterLocked(running, update.bill.usd);
  return recorded;  // the caller announces it, which updates the cost series
}

BudgetDecision Scheduler::DecideBudgetLocked(const RunningAttempt& running,
                                             const v1::CostSummary& cost) const {
  BudgetObservation observation;
  observation.accrued_usd = cost.accrued_usd();
  observation.projected_usd = cost.projected_usd();
  observation.progress_ratio =
      running.total_steps > 0 ? static_cast<double>(running.step) / running.total_steps : 0;
  observation.projection_known = running.step_rate.StepsPerSecond().has_value();
  observation.steps_measured = running.step_rate.StepsMeasured();
  return EvaluateBudget(running.budget, running.budget_state, observation);
}

absl::Status Scheduler::EnforceBudgetLocked(RunningAttempt& running, const v1::Job& job) {
  const BudgetDecision decision = DecideBudgetLocked(running, job.cost());
  if (!decision.crossed_thresholds.empty() || decision.raise_projected_overrun) {
    TL_ASSIGN_OR_RETURN(const JobUpdate recorded,
                        store_.RecordBudget(running.job_id, running.attempt, decision,
                                            job.cost().accrued_usd(), job.cost().projected_usd()));
    running.budget_state = decision.next_state;
    for (const double threshold : decision.crossed_thresholds) {
      metrics_.OnBudgetThreshold(running.tenant, threshold);
      TL_LOG(INFO) << "job " << running.job_id << " crossed " << threshold * 100
                   << "% of its budget";
    }
    if (decision.raise_projected_overrun) metrics_.OnProjectedOverrun(running.tenant);
    Announce(recorded);
  }
  if (!decision.cancel) return absl::OkStatus();
  const std::string message =
      absl::StrCat("budget exceeded: accrued ", FormatUsd(job.cost().accrued_usd()), " of the ",
                   FormatUsd(running.budget.usd()), " budget");
  // `running` is gone after this call.
  return CancelLocked(running.job_id, v1::Job::BUDGET_EXCEEDED, message).status();
}

absl::StatusOr<v1::Job> Scheduler::CancelLocked(std::string job_id, v1::Job::Reason reason,
                                                const std::string& message) {
  auto it = running_.find(job_id);
  std::optional<AttemptEnd> end;
  if (it != running_.end()) {
    // The server revokes the lease now: the job is charged up to this instant.
    const absl::Time now = clock_.Now();
    end.emplace();
    end->attempt = it->second.attempt;
    end->outcome = "CANCELLED";
    end->end_time = now;
    end->message = message;
    end->bill = ComputeBill(it->second, now);
  }
  TL_ASSIGN_OR_RETURN(const JobUpdate update, store_.Cancel(job_id, reason, message, end));
  if (it != running_.end()) {
    RunningAttempt& running = it->second;
    const double delta = end->bill.usd - running.metered_usd;
    if (delta > 0) metrics_.AddComputeCost(running.tenant, delta);
    Revoked& revoked = revoked_[job_id];
    revoked.attempt = running.attempt;
    revoked.worker_id = running.worker_id;
    revoked.command.set_kind(v1::WorkerCommand::CANCEL);
    revoked.command.set_job_id(job_id);
    revoked.command.set_reason(reason);
    revoked.command.set_message(message);
    ++command_generation_;
    EraseRunningLocked(it);
  }
  TL_LOG(INFO) << "job " << job_id << " cancelled (" << v1::Job::Reason_Name(reason)
               << "): " << message;
  Announce(update);
  OnJobEnded(update.job);
  return update.job;
}

void Scheduler::LoseAttemptLocked(std::string job_id, absl::Time last_contact,
                                  const std::string& message, const std::string& outcome) {
  auto it = running_.find(job_id);
  if (it == running_.end()) return;
  RunningAttempt& running = it->second;
  AttemptEnd end;
  end.attempt = running.attempt;
  end.outcome = outcome;
  end.end_time = std::max(running.lease_start, last_contact);
  end.message = message;
  end.bill = ComputeBill(running, end.end_time);
  const std::string tenant = running.tenant;
  const absl::StatusOr<JobUpdate> update = store_.Requeue(job_id, end);
  EraseRunningLocked(it);
  ++queue_generation_;
  if (!update.ok()) {
    TL_LOG(ERROR) << "requeue of job " << job_id << " after a lost attempt: " << update.status();
    return;
  }
  TL_LOG(WARNING) << "job " << job_id << " attempt " << end.attempt << " " << outcome << "; job is "
                  << v1::Job::State_Name(update->job.state());
  metrics_.AddPreemptionWaste(tenant, update->wasted_usd);
  Announce(*update);
  if (IsFinalState(update->job.state())) OnJobEnded(update->job);
}

void Scheduler::ExpireWorkersLocked(absl::Time now) {
  for (auto it = workers_.begin(); it != workers_.end();) {
    if (now - it->second.last_contact <= options_.heartbeat_timeout) {
      ++it;
      continue;
    }
    const std::string worker_id = it->first;
    const absl::Time last_contact = it->second.last_contact;
    ++it;  // RemoveWorkerLocked erases worker_id's entry
    TL_LOG(WARNING) << "worker " << worker_id << " is LOST: silent since "
                    << absl::FormatTime(last_contact);
    RemoveWorkerLocked(worker_id, v1::Worker::LOST, last_contact,
                       absl::StrCat("worker ", worker_id, " missed its heartbeats"));
  }
}

void Scheduler::RemoveWorkerLocked(const std::string& worker_id, v1::Worker::State state,
                                   absl::Time attempts_end, const std::string& message) {
  if (absl::Status status = store_.SetWorkerGone(worker_id, state); !status.ok()) {
    TL_LOG(ERROR) << "marking worker " << worker_id << " " << v1::Worker::State_Name(state) << ": "
                  << status;
  }
  metrics_.RemoveWorker(worker_id);
  std::vector<std::string> jobs;
  // A gang loses its whole attempt with any of its workers (rank 0 would lose a rank anyway).
  for (const auto& [job_id, running] : running_) {
    if (IsMember(running, worker_id)) jobs.push_back(job_id);
  }
  if (forming_gang_) {
    auto& members = forming_gang_->members;
    members.erase(std::remove_if(members.begin(), members.end(),
                                 [&](const GangMember& m) { return m.worker_id == worker_id; }),
                  members.end());
    if (members.empty()) forming_gang_.reset();
  }
  gang_leases_.erase(worker_id);
  // A worker that said goodbye was stopped, not lost: its attempts were preempted.
  const std::string outcome = state == v1::Worker::GONE ? "PREEMPTED" : "LOST";
  for (const std::string& job_id : jobs) {
    LoseAttemptLocked(job_id, attempts_end, message, outcome);
  }
  for (auto revoked = revoked_.begin(); revoked != revoked_.end();) {
    revoked = revoked->second.worker_id == worker_id ? revoked_.erase(revoked) : ++revoked;
  }
  workers_.erase(worker_id);
  estimate_workers_.reset();
}

void Scheduler::ExplainWaitingLocked() {
  // With no worker at all every job waits; the queue alert says so. With workers, a job that
  // needs more GPUs than the largest has would wait silently forever: say why.
  if (workers_.empty()) {
    metrics_.SetUnschedulableJobs(0);
    return;
  }
  // A gang can gather every registered worker's GPUs.
  int max_gpus = 0;
  for (const auto& [id, worker] : workers_) max_gpus += worker.info.gpus();
  constexpr int kExplainedPerTick = 64;  // the rest are explained on later ticks
  absl::StatusOr<UnschedulableJobs> waiting = store_.FindUnschedulable(max_gpus, kExplainedPerTick);
  if (!waiting.ok()) {
    TL_LOG(ERROR) << "looking for jobs no worker can run: " << waiting.status();
    return;
  }
  metrics_.SetUnschedulableJobs(waiting->count);
  for (const UnschedulableJobs::Entry& job : waiting->jobs) {
    const std::string message = absl::StrCat("waiting: the registered workers have ", max_gpus,
                                             " GPUs in all, the job needs ", job.gpus);
    absl::StatusOr<std::optional<JobUpdate>> recorded = store_.RecordWaiting(job.job_id, message);
    if (!recorded.ok()) {
      TL_LOG(ERROR) << "explaining why job " << job.job_id << " waits: " << recorded.status();
    } else if (recorded->has_value()) {
      Announce(**recorded);
    }
  }
}

std::vector<Scheduler::QueuedBill> Scheduler::QueueAccrualLocked(absl::Time now) {
  std::vector<QueuedBill> bills;
  bills.reserve(running_.size());
  for (const auto& [job_id, running] : running_) {
    AttemptProgress bill = BillUpdateLocked(running, now, std::nullopt, /*contact=*/false);
    const double usd = bill.bill.usd;
    bills.push_back(QueuedBill{job_id, running.attempt, usd,
                               store_.StartRecordProgress(job_id, std::move(bill))});
  }
  return bills;
}

void Scheduler::SettleAccrual(std::vector<QueuedBill> bills) {
  std::vector<std::pair<const QueuedBill*, JobUpdate>> billed;
  billed.reserve(bills.size());
  for (QueuedBill& bill : bills) {
    absl::StatusOr<JobUpdate> recorded = std::move(bill.write).Wait();
    if (!recorded.ok()) {
      TL_LOG(ERROR) << "server-clock accrual of job " << bill.job_id << ": " << recorded.status();
      continue;
    }
    Announce(*recorded);
    billed.emplace_back(&bill, *std::move(recorded));
  }
  absl::MutexLock lock(&mu_);
  for (const auto& [bill, update] : billed) {
    auto it = running_.find(bill->job_id);
    // Ended while the bill was written: whatever ended it recorded the final bill.
    if (it == running_.end() || it->second.attempt != bill->attempt) continue;
    MeterLocked(it->second, bill->usd);
    if (absl::Status status = EnforceBudgetLocked(it->second, update.job); !status.ok()) {
      TL_LOG(ERROR) << "budget enforcement of job " << bill->job_id << ": " << status;
    }
  }
}

// ---- Telling others ----

void Scheduler::Announce(const JobUpdate& update) {
  // The per-job cost series follows every stored bill, the final one too, so that the metric
  // always equals what `tunectl cost` says.
  const v1::Job& job = update.job;
  if (job.state() != v1::Job::QUEUED || job.cost().accrued_usd() > 0) {
    const bool ended = IsFinalState(job.state());
    std::optional<double> budget;
    if (job.spec().budget().has_usd()) budget = job.spec().budget().usd();
    metrics_.OnCost(job.id(), job.tenant(), job.cost().accrued_usd(),
                    ended ? job.cost().accrued_usd() : job.cost().projected_usd(), budget,
                    std::vector<double>(job.spec().budget().thresholds().begin(),
                                        job.spec().budget().thresholds().end()));
  }
  if (update.events.empty()) {
    watch_hub_.Publish(update.job, nullptr);
    return;
  }
  for (const v1::JobEvent& event : update.events) watch_hub_.Publish(update.job, &event);
}

void Scheduler::OnJobEnded(const v1::Job& job) {
  if (job.state() == v1::Job::SUCCEEDED) {
    absl::MutexLock lock(&estimate_mu_);
    ++jobs_succeeded_;  // the estimator's history is read again
  }
  metrics_.OnFinished(job.id(), job.tenant(), v1::Job::State_Name(job.state()),
                      ReasonLabel(job.reason()));
  if (job.progress().has_eval_loss()) {
    absl::MutexLock lock(&cost_quality_mu_);
    cost_quality_stale_tenants_.insert(job.tenant());
  }
}

void Scheduler::RefreshCostQualityGauges() {
  std::set<std::string> tenants;
  {
    absl::MutexLock lock(&cost_quality_mu_);
    tenants.swap(cost_quality_stale_tenants_);
  }
  for (const std::string& tenant : tenants) {
    absl::StatusOr<v1::ParetoFront> front = GetParetoFront(tenant, {});
    if (!front.ok()) {
      TL_LOG(ERROR) << "cost-quality gauges of tenant " << tenant << ": " << front.status();
      continue;
    }
    for (const v1::ParetoPoint& point : front->points()) {
      metrics_.OnCostQuality(point.job_id(), point.total_usd(), point.pareto_optimal());
    }
  }
}

void Scheduler::RefreshGauges() {
  absl::StatusOr<std::map<std::string, int64_t>> jobs = store_.CountJobsByState();
  if (jobs.ok()) {
    metrics_.SetJobCounts(*jobs);
    auto queued = jobs->find(v1::Job::State_Name(v1::Job::QUEUED));
    metrics_.SetQueueDepth(queued == jobs->end() ? 0 : queued->second);
  } else {
    TL_LOG(ERROR) << "counting jobs for the gauges: " << jobs.status();
  }
  absl::StatusOr<std::vector<v1::Worker>> workers = store_.ListWorkers();
  if (workers.ok()) {
    std::map<std::string, int64_t> by_state;
    for (const v1::Worker& worker : *workers) ++by_state[v1::Worker::State_Name(worker.state())];
    metrics_.SetWorkerCounts(by_state);
  } else {
    TL_LOG(ERROR) << "counting workers for the gauges: " << workers.status();
  }
}

}  // namespace tuneledger
