#include "server/metrics/server_metrics.h"

#include <array>
#include <cmath>
#include <cstddef>
#include <initializer_list>
#include <iterator>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace tuneledger {
namespace {

enum class Kind { kCounter, kGauge, kHistogram };

// Index of each family in kFamilies; the order of both must agree (checked below).
enum FamilyId : int {
  kJobs,
  kQueueDepth,
  kUnschedulableJobs,
  kJobSubmissions,
  kJobFinishes,
  kJobLoss,
  kJobEvalLoss,
  kJobTokensPerSecond,
  kJobTokens,
  kJobStep,
  kJobProgressRatio,
  kJobAccruedCost,
  kJobProjectedCost,
  kJobBudget,
  kJobBudgetThresholdRatio,
  kJobTotalCost,
  kJobParetoOptimal,
  kBudgetThresholdCrossings,
  kProjectedOverruns,
  kComputeCost,
  kPreemptionWaste,
  kWorkers,
  kWorkerPrice,
  kWorkerGpus,
  kRpcDuration,
  kFamilyCount,
};

constexpr int kMaxLabelKeys = 3;

struct FamilySpec {
  FamilyId id;
  Kind kind;
  const char* name;
  const char* help;
  // Label keys in the order the call sites pass values; unused slots are nullptr.
  std::array<const char*, kMaxLabelKeys> label_keys;
};

// The one table every family is built from. deploy/ rules and dashboards use these names;
// tests/deploy checks that every name they use is exported here.
constexpr FamilySpec kFamilies[] = {
    {kJobs, Kind::kGauge, "tuneledger_jobs", "Jobs by state.", {"state"}},
    {kQueueDepth, Kind::kGauge, "tuneledger_queue_depth", "Jobs waiting in state QUEUED.", {}},
    {kUnschedulableJobs,
     Kind::kGauge,
     "tuneledger_unschedulable_jobs",
     "QUEUED jobs that need more GPUs than any registered worker has.",
     {}},
    {kJobSubmissions,
     Kind::kCounter,
     "tuneledger_job_submissions_total",
     "Jobs accepted by SubmitJob.",
     {"tenant"}},
    {kJobFinishes,
     Kind::kCounter,
     "tuneledger_job_finishes_total",
     "Jobs that reached a final state, by state and reason (NONE when there is no reason).",
     {"state", "reason"}},
    {kJobLoss,
     Kind::kGauge,
     "tuneledger_job_loss",
     "Latest training loss of the job (NaN when the trainer reported NaN).",
     {"job_id", "tenant"}},
    {kJobEvalLoss,
     Kind::kGauge,
     "tuneledger_job_eval_loss",
     "Latest evaluation loss of the job on its validation set.",
     {"job_id", "tenant"}},
    {kJobTokensPerSecond,
     Kind::kGauge,
     "tuneledger_job_tokens_per_second",
     "Training throughput of the job's running attempt.",
     {"job_id", "tenant"}},
    {kJobTokens,
     Kind::kCounter,
     "tuneledger_job_tokens_total",
     "Tokens the job has trained on, over all attempts.",
     {"job_id", "tenant"}},
    {kJobStep,
     Kind::kGauge,
     "tuneledger_job_step",
     "Latest optimizer step of the job.",
     {"job_id", "tenant"}},
    {kJobProgressRatio,
     Kind::kGauge,
     "tuneledger_job_progress_ratio",
     "Fraction of the job's planned steps done (0 to 1).",
     {"job_id", "tenant"}},
    {kJobAccruedCost,
     Kind::kGauge,
     "tuneledger_job_accrued_cost_usd",
     "Compute cost the job has accrued so far, over all attempts.",
     {"job_id", "tenant"}},
    {kJobProjectedCost,
     Kind::kGauge,
     "tuneledger_job_projected_cost_usd",
     "Projected total compute cost of the job (accrued plus rate times remaining time).",
     {"job_id", "tenant"}},
    {kJobBudget,
     Kind::kGauge,
     "tuneledger_job_budget_usd",
     "Budget of the job (only jobs that have one).",
     {"job_id", "tenant"}},
    {kJobBudgetThresholdRatio,
     Kind::kGauge,
     "tuneledger_job_budget_threshold_ratio",
     "A budget threshold of the job as a fraction of its budget; times "
     "tuneledger_job_budget_usd it is the threshold line in USD.",
     {"job_id", "tenant", "threshold"}},
    {kJobTotalCost,
     Kind::kGauge,
     "tuneledger_job_total_cost_usd",
     "Total cost of a finished job with an eval loss: compute plus the inherited costs its spec "
     "declares (the cost report's total).",
     {"job_id", "tenant"}},
    {kJobParetoOptimal,
     Kind::kGauge,
     "tuneledger_job_pareto_optimal",
     "1 when the finished job is Pareto-optimal on total cost against eval loss among its "
     "tenant's finished jobs (tunectl pareto), else 0.",
     {"job_id", "tenant"}},
    {kBudgetThresholdCrossings,
     Kind::kCounter,
     "tuneledger_budget_threshold_crossings_total",
     "Budget thresholds crossed by jobs, each crossing counted once.",
     {"tenant", "threshold"}},
    {kProjectedOverruns,
     Kind::kCounter,
     "tuneledger_projected_overruns_total",
     "Jobs whose projected cost first went past their budget.",
     {"tenant"}},
    {kComputeCost,
     Kind::kCounter,
     "tuneledger_compute_cost_usd_total",
     "Compute cost spent, by tenant.",
     {"tenant"}},
    {kPreemptionWaste,
     Kind::kCounter,
     "tuneledger_preemption_waste_usd_total",
     "Compute spent on steps lost to a preemption or a lost worker and computed again after "
     "resuming from the last checkpoint (part of tuneledger_compute_cost_usd_total), by tenant.",
     {"tenant"}},
    {kWorkers, Kind::kGauge, "tuneledger_workers", "Workers by state.", {"state"}},
    {kWorkerPrice,
     Kind::kGauge,
     "tuneledger_worker_price_usd_per_gpu_hour",
     "Price per GPU-hour a worker declared, and whether it runs on spot capacity.",
     {"worker_id", "spot"}},
    {kWorkerGpus, Kind::kGauge, "tuneledger_worker_gpus", "GPUs a worker offers.", {"worker_id"}},
    {kRpcDuration,
     Kind::kHistogram,
     "tuneledger_rpc_duration_seconds",
     "Server-side duration of gRPC calls, by full method name and status code.",
     {"method", "code"}},
};
static_assert(std::size(kFamilies) == kFamilyCount, "one table row per FamilyId");

constexpr bool TableOrderMatchesIds() {
  for (int i = 0; i < kFamilyCount; ++i) {
    if (kFamilies[i].id != i) return false;
  }
  return true;
}
static_assert(TableOrderMatchesIds(), "kFamilies rows must be in FamilyId order");

// States that always have a series (0 when absent), so that alerts and dashboards see a value
// before the first job or worker exists. Names are the proto enum value names.
constexpr const char* kJobStates[] = {"QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"};
constexpr const char* kWorkerStates[] = {"IDLE", "BUSY", "LOST", "GONE"};

// Latency buckets: loopback unary calls take ~200 us; LeaseJob long-polls and streams last
// seconds to minutes.
const prometheus::Histogram::BucketBoundaries& RpcBuckets() {
  static const auto* const kBuckets = new prometheus::Histogram::BucketBoundaries{
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
      0.25,   0.5,     1,      2.5,   5,      10,    30,   60,    300};
  return *kBuckets;
}

// Zips a family's label keys with `values` (given in the table's key order).
prometheus::Labels LabelsFor(FamilyId id, std::initializer_list<std::string> values) {
  prometheus::Labels labels;
  const auto& keys = kFamilies[id].label_keys;
  int i = 0;
  for (const std::string& value : values) {
    if (i >= kMaxLabelKeys || keys[i] == nullptr) break;
    labels.emplace(keys[i], value);
    ++i;
  }
  return labels;
}

// "0.5", "0.8", "1": the same spelling everywhere a threshold is a label value.
std::string ThresholdLabel(double threshold) { return absl::StrCat(threshold); }

}  // namespace

struct ServerMetrics::Impl {
  // The per-job series of one job. Handles are created when first set and removed together.
  struct JobMetrics {
    std::string tenant;
    std::array<prometheus::Gauge*, kFamilyCount> gauges{};  // single-series job gauges
    prometheus::Counter* tokens = nullptr;
    std::vector<prometheus::Gauge*> threshold_lines;
    bool budget_recorded = false;
    std::optional<absl::Time> finished_at;
    // Series removed; the entry stays one more retention so that late reports about the job
    // do not bring its series back (which nothing would remove again).
    bool retired = false;

    bool HasSeries() const {
      for (const prometheus::Gauge* gauge : gauges) {
        if (gauge != nullptr) return true;
      }
      return tokens != nullptr || !threshold_lines.empty();
    }
  };

  struct WorkerMetrics {
    prometheus::Gauge* price = nullptr;
    prometheus::Gauge* gpus = nullptr;
  };

  Impl(prometheus::Registry& registry, const Clock& clock, ServerMetricsOptions options)
      : clock(clock), options(options) {
    for (const FamilySpec& spec : kFamilies) {
      switch (spec.kind) {
        case Kind::kCounter:
          counters[spec.id] =
              &prometheus::BuildCounter().Name(spec.name).Help(spec.help).Register(registry);
          break;
        case Kind::kGauge:
          gauges[spec.id] =
              &prometheus::BuildGauge().Name(spec.name).Help(spec.help).Register(registry);
          break;
        case Kind::kHistogram:
          histograms[spec.id] =
              &prometheus::BuildHistogram().Name(spec.name).Help(spec.help).Register(registry);
          break;
      }
    }
    queue_depth = &gauges[kQueueDepth]->Add({});
    unschedulable_jobs = &gauges[kUnschedulableJobs]->Add({});
    for (const char* state : kJobStates) {
      job_state_gauges[state] = &gauges[kJobs]->Add(LabelsFor(kJobs, {state}));
    }
    for (const char* state : kWorkerStates) {
      worker_state_gauges[state] = &gauges[kWorkers]->Add(LabelsFor(kWorkers, {state}));
    }
  }

  // Returns the job's entry, creating it; nullptr when the job's series were already retired.
  JobMetrics* LiveJob(const std::string& job_id, const std::string& tenant)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    auto [it, inserted] = jobs.try_emplace(job_id);
    if (inserted) it->second.tenant = tenant;
    return it->second.retired ? nullptr : &it->second;
  }

  prometheus::Gauge& JobGauge(JobMetrics& job, const std::string& job_id, FamilyId id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (job.gauges[id] == nullptr) {
      job.gauges[id] = &gauges[id]->Add(LabelsFor(id, {job_id, job.tenant}));
    }
    return *job.gauges[id];
  }

  void RemoveSeries(JobMetrics& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    for (int id = 0; id < kFamilyCount; ++id) {
      if (job.gauges[id] != nullptr) gauges[id]->Remove(job.gauges[id]);
      job.gauges[id] = nullptr;
    }
    if (job.tokens != nullptr) counters[kJobTokens]->Remove(job.tokens);
    job.tokens = nullptr;
    for (prometheus::Gauge* line : job.threshold_lines) {
      gauges[kJobBudgetThresholdRatio]->Remove(line);
    }
    job.threshold_lines.clear();
  }

  // Sets every known state (0 when absent) and any extra state the caller names.
  static void SetStateCounts(prometheus::Family<prometheus::Gauge>& family, FamilyId id,
                             std::map<std::string, prometheus::Gauge*>& by_state,
                             const std::map<std::string, int64_t>& count_by_state) {
    for (auto& [state, gauge] : by_state) gauge->Set(0);
    for (const auto& [state, count] : count_by_state) {
      prometheus::Gauge*& gauge = by_state[state];
      if (gauge == nullptr) gauge = &family.Add(LabelsFor(id, {state}));
      gauge->Set(static_cast<double>(count));
    }
  }

  const Clock& clock;
  const ServerMetricsOptions options;

  // Written once in the constructor, read-only afterwards.
  std::array<prometheus::Family<prometheus::Counter>*, kFamilyCount> counters{};
  std::array<prometheus::Family<prometheus::Gauge>*, kFamilyCount> gauges{};
  std::array<prometheus::Family<prometheus::Histogram>*, kFamilyCount> histograms{};
  prometheus::Gauge* queue_depth = nullptr;
  prometheus::Gauge* unschedulable_jobs = nullptr;

  // mu guards every handle map below (the handles themselves are updated lock-free).
  mutable absl::Mutex mu;
  std::map<std::string, prometheus::Gauge*> job_state_gauges ABSL_GUARDED_BY(mu);
  std::map<std::string, prometheus::Gauge*> worker_state_gauges ABSL_GUARDED_BY(mu);
  absl::flat_hash_map<std::string, JobMetrics> jobs ABSL_GUARDED_BY(mu);
  absl::flat_hash_map<std::string, WorkerMetrics> workers ABSL_GUARDED_BY(mu);
  // Cached label handles of small, bounded label sets (tenants, states, methods x codes).
  absl::flat_hash_map<std::string, prometheus::Counter*> submissions ABSL_GUARDED_BY(mu);
  absl::flat_hash_map<std::string, prometheus::Counter*> compute_cost ABSL_GUARDED_BY(mu);
  absl::flat_hash_map<std::string, prometheus::Counter*> preemption_waste ABSL_GUARDED_BY(mu);
  absl::flat_hash_map<std::string, prometheus::Counter*> overruns ABSL_GUARDED_BY(mu);
  absl::flat_hash_map<std::pair<std::string, std::string>, prometheus::Counter*> finishes
      ABSL_GUARDED_BY(mu);
  absl::flat_hash_map<std::pair<std::string, std::string>, prometheus::Counter*> crossings
      ABSL_GUARDED_BY(mu);
  absl::flat_hash_map<std::pair<std::string, std::string>, prometheus::Histogram*> rpcs
      ABSL_GUARDED_BY(mu);
};

ServerMetrics::ServerMetrics(prometheus::Registry& registry, const Clock& clock,
                             ServerMetricsOptions options)
    : impl_(std::make_unique<Impl>(registry, clock, options)) {}

ServerMetrics::~ServerMetrics() = default;

void ServerMetrics::SetJobCounts(const std::map<std::string, int64_t>& count_by_state) {
  absl::MutexLock lock(&impl_->mu);
  Impl::SetStateCounts(*impl_->gauges[kJobs], kJobs, impl_->job_state_gauges, count_by_state);
}

void ServerMetrics::SetQueueDepth(int64_t depth) {
  impl_->queue_depth->Set(static_cast<double>(depth));
}

void ServerMetrics::SetUnschedulableJobs(int64_t count) {
  impl_->unschedulable_jobs->Set(static_cast<double>(count));
}

void ServerMetrics::OnSubmitted(const std::string& tenant) {
  absl::MutexLock lock(&impl_->mu);
  prometheus::Counter*& counter = impl_->submissions[tenant];
  if (counter == nullptr) {
    counter = &impl_->counters[kJobSubmissions]->Add(LabelsFor(kJobSubmissions, {tenant}));
  }
  counter->Increment();
}

void ServerMetrics::OnFinished(const std::string& job_id, const std::string& tenant,
                               const std::string& state, const std::string& reason) {
  absl::MutexLock lock(&impl_->mu);
  const std::string reason_label = reason.empty() ? "NONE" : reason;
  prometheus::Counter*& counter = impl_->finishes[{state, reason_label}];
  if (counter == nullptr) {
    counter = &impl_->counters[kJobFinishes]->Add(LabelsFor(kJobFinishes, {state, reason_label}));
  }
  counter->Increment();
  // A job that never reported still gets an entry, so that a late report cannot create series
  // that would never be removed.
  auto [it, inserted] = impl_->jobs.try_emplace(job_id);
  if (inserted) it->second.tenant = tenant;
  if (!it->second.finished_at.has_value()) it->second.finished_at = impl_->clock.Now();
}

void ServerMetrics::OnProgress(const std::string& job_id, const std::string& tenant,
                               const JobProgressSample& sample) {
  absl::MutexLock lock(&impl_->mu);
  Impl::JobMetrics* job = impl_->LiveJob(job_id, tenant);
  if (job == nullptr) return;
  impl_->JobGauge(*job, job_id, kJobStep).Set(sample.step);
  impl_->JobGauge(*job, job_id, kJobLoss).Set(sample.loss);
  impl_->JobGauge(*job, job_id, kJobTokensPerSecond).Set(sample.tokens_per_second);
  impl_->JobGauge(*job, job_id, kJobProgressRatio).Set(sample.progress_ratio);
  if (job->tokens == nullptr) {
    job->tokens = &impl_->counters[kJobTokens]->Add(LabelsFor(kJobTokens, {job_id, job->tenant}));
  }
  // The sample carries a cumulative count; a resumed attempt may report fewer tokens than were
  // already counted, and a counter must never go down.
  const double delta = static_cast<double>(sample.tokens) - job->tokens->Value();
  if (delta > 0) job->tokens->Increment(delta);
}

void ServerMetrics::OnEvalLoss(const std::string& job_id, const std::string& tenant,
                               double eval_loss) {
  absl::MutexLock lock(&impl_->mu);
  Impl::JobMetrics* job = impl_->LiveJob(job_id, tenant);
  if (job == nullptr) return;
  impl_->JobGauge(*job, job_id, kJobEvalLoss).Set(eval_loss);
}

void ServerMetrics::OnCost(const std::string& job_id, const std::string& tenant, double accrued_usd,
                           double projected_usd, std::optional<double> budget_usd,
                           const std::vector<double>& thresholds) {
  absl::MutexLock lock(&impl_->mu);
  Impl::JobMetrics* job = impl_->LiveJob(job_id, tenant);
  if (job == nullptr) return;
  impl_->JobGauge(*job, job_id, kJobAccruedCost).Set(accrued_usd);
  impl_->JobGauge(*job, job_id, kJobProjectedCost).Set(projected_usd);
  if (job->budget_recorded || !budget_usd.has_value()) return;
  job->budget_recorded = true;
  impl_->JobGauge(*job, job_id, kJobBudget).Set(*budget_usd);
  for (double threshold : thresholds) {
    prometheus::Gauge& line = impl_->gauges[kJobBudgetThresholdRatio]->Add(
        LabelsFor(kJobBudgetThresholdRatio, {job_id, job->tenant, ThresholdLabel(threshold)}));
    line.Set(threshold);
    job->threshold_lines.push_back(&line);
  }
}

void ServerMetrics::OnCostQuality(const std::string& job_id, double total_usd,
                                  bool pareto_optimal) {
  absl::MutexLock lock(&impl_->mu);
  auto it = impl_->jobs.find(job_id);
  // Only series still kept: a job long gone (or from before a restart) gets none back.
  if (it == impl_->jobs.end() || it->second.retired) return;
  impl_->JobGauge(it->second, job_id, kJobTotalCost).Set(total_usd);
  impl_->JobGauge(it->second, job_id, kJobParetoOptimal).Set(pareto_optimal ? 1 : 0);
}

void ServerMetrics::AddComputeCost(const std::string& tenant, double delta_usd) {
  if (!(delta_usd >= 0)) return;  // also drops NaN
  absl::MutexLock lock(&impl_->mu);
  prometheus::Counter*& counter = impl_->compute_cost[tenant];
  if (counter == nullptr) {
    counter = &impl_->counters[kComputeCost]->Add(LabelsFor(kComputeCost, {tenant}));
    // Waste is part of compute: a tenant's waste series starts, at 0, with its compute series,
    // so that "no waste" reads as 0 on the dashboard rather than as no data.
    prometheus::Counter*& waste = impl_->preemption_waste[tenant];
    if (waste == nullptr) {
      waste = &impl_->counters[kPreemptionWaste]->Add(LabelsFor(kPreemptionWaste, {tenant}));
    }
  }
  counter->Increment(delta_usd);
}

void ServerMetrics::AddPreemptionWaste(const std::string& tenant, double usd) {
  if (!(usd > 0)) return;  // also drops NaN
  absl::MutexLock lock(&impl_->mu);
  prometheus::Counter*& counter = impl_->preemption_waste[tenant];
  if (counter == nullptr) {
    counter = &impl_->counters[kPreemptionWaste]->Add(LabelsFor(kPreemptionWaste, {tenant}));
  }
  counter->Increment(usd);
}

void ServerMetrics::OnBudgetThreshold(const std::string& tenant, double threshold) {
  absl::MutexLock lock(&impl_->mu);
  const std::string threshold_label = ThresholdLabel(threshold);
  prometheus::Counter*& counter = impl_->crossings[{tenant, threshold_label}];
  if (counter == nullptr) {
    counter = &impl_->counters[kBudgetThresholdCrossings]->Add(
        LabelsFor(kBudgetThresholdCrossings, {tenant, threshold_label}));
  }
  counter->Increment();
}

void ServerMetrics::OnProjectedOverrun(const std::string& tenant) {
  absl::MutexLock lock(&impl_->mu);
  prometheus::Counter*& counter = impl_->overruns[tenant];
  if (counter == nullptr) {
    counter = &impl_->counters[kProjectedOverruns]->Add(LabelsFor(kProjectedOverruns, {tenant}));
  }
  counter->Increment();
}

void ServerMetrics::SetWorkerCounts(const std::map<std::string, int64_t>& count_by_state) {
  absl::MutexLock lock(&impl_->mu);
  Impl::SetStateCounts(*impl_->gauges[kWorkers], kWorkers, impl_->worker_state_gauges,
                       count_by_state);
}

void ServerMetrics::SetWorker(const std::string& worker_id, double price_per_gpu_hour, bool spot,
                              int gpus) {
  absl::MutexLock lock(&impl_->mu);
  Impl::WorkerMetrics& worker = impl_->workers[worker_id];
  // The spot flag is a label: a worker that changes it gets a new series, not two.
  if (worker.price != nullptr) impl_->gauges[kWorkerPrice]->Remove(worker.price);
  worker.price = &impl_->gauges[kWorkerPrice]->Add(
      LabelsFor(kWorkerPrice, {worker_id, spot ? "true" : "false"}));
  worker.price->Set(price_per_gpu_hour);
  if (worker.gpus == nullptr) {
    worker.gpus = &impl_->gauges[kWorkerGpus]->Add(LabelsFor(kWorkerGpus, {worker_id}));
  }
  worker.gpus->Set(gpus);
}

void ServerMetrics::RemoveWorker(const std::string& worker_id) {
  absl::MutexLock lock(&impl_->mu);
  auto it = impl_->workers.find(worker_id);
  if (it == impl_->workers.end()) return;
  if (it->second.price != nullptr) impl_->gauges[kWorkerPrice]->Remove(it->second.price);
  if (it->second.gpus != nullptr) impl_->gauges[kWorkerGpus]->Remove(it->second.gpus);
  impl_->workers.erase(it);
}

void ServerMetrics::ObserveRpc(const std::string& method, const std::string& code, double seconds) {
  prometheus::Histogram* histogram = nullptr;
  {
    absl::MutexLock lock(&impl_->mu);
    prometheus::Histogram*& cached = impl_->rpcs[{method, code}];
    if (cached == nullptr) {
      cached = &impl_->histograms[kRpcDuration]->Add(LabelsFor(kRpcDuration, {method, code}),
                                                     RpcBuckets());
    }
    histogram = cached;
  }
  histogram->Observe(seconds);
}

int ServerMetrics::RemoveExpired() {
  absl::MutexLock lock(&impl_->mu);
  const absl::Time now = impl_->clock.Now();
  const absl::Duration retention = impl_->options.job_series_retention;
  int removed = 0;
  for (auto it = impl_->jobs.begin(); it != impl_->jobs.end();) {
    Impl::JobMetrics& job = it->second;
    if (!job.finished_at.has_value()) {
      ++it;
      continue;
    }
    if (!job.retired && now >= *job.finished_at + retention) {
      if (job.HasSeries()) ++removed;
      impl_->RemoveSeries(job);
      job.retired = true;
    }
    if (job.retired && now >= *job.finished_at + 2 * retention) {
      impl_->jobs.erase(it++);
    } else {
      ++it;
    }
  }
  return removed;
}

std::vector<std::string> ServerMetrics::ExposedMetricNames() {
  std::vector<std::string> names;
  for (const FamilySpec& spec : kFamilies) {
    if (spec.kind == Kind::kHistogram) {
      for (const char* suffix : {"_bucket", "_sum", "_count"}) {
        names.push_back(absl::StrCat(spec.name, suffix));
      }
    } else {
      names.emplace_back(spec.name);
    }
  }
  return names;
}

int ServerMetrics::TrackedJobCount() const {
  absl::MutexLock lock(&impl_->mu);
  int count = 0;
  for (const auto& [job_id, job] : impl_->jobs) {
    if (job.HasSeries()) ++count;
  }
  return count;
}

}  // namespace tuneledger
