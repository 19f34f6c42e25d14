// ServerMetrics: the owner of every Prometheus family the server exports (prefix tuneledger_).
//
// Families are built once, from one constant table (name, help, label keys), on the Registry
// passed in; there is no global registry, so a test can build two servers side by side.
// Per-job series (labels job_id, tenant) live in a JobMetrics entry that is removed with
// Family::Remove `job_series_retention` after the job ends (RemoveExpired does it; the server
// calls it periodically), so series cardinality stays bounded.
//
// Names (counters end in _total, base units in the name):
//   tuneledger_jobs{state}                                  gauge   jobs by state
//   tuneledger_queue_depth                                  gauge   QUEUED jobs
//   tuneledger_unschedulable_jobs                           gauge   QUEUED jobs no registered
//                                                           worker has the GPUs for
//   tuneledger_job_submissions_total{tenant}                counter
//   tuneledger_job_finishes_total{state,reason}             counter reason "" -> "NONE"
//   tuneledger_job_loss{job_id,tenant}                      gauge   training loss (NaN allowed)
//   tuneledger_job_eval_loss{job_id,tenant}                 gauge
//   tuneledger_job_tokens_per_second{job_id,tenant}         gauge
//   tuneledger_job_tokens_total{job_id,tenant}              counter tokens trained on
//   tuneledger_job_step{job_id,tenant}                      gauge
//   tuneledger_job_progress_ratio{job_id,tenant}            gauge   0..1
//   tuneledger_job_accrued_cost_usd{job_id,tenant}          gauge
//   tuneledger_job_projected_cost_usd{job_id,tenant}        gauge
//   tuneledger_job_budget_usd{job_id,tenant}                gauge   only for jobs with a budget
//   tuneledger_job_budget_threshold_ratio{job_id,tenant,threshold} gauge  the threshold as a
//                                                           fraction of the budget (0.5, 0.8, 1;
//                                                           label spelled the same); times
//                                                           tuneledger_job_budget_usd it is the
//                                                           dashboard's threshold line in USD
//   tuneledger_job_total_cost_usd{job_id,tenant}            gauge   finished jobs with an eval
//                                                           loss: compute + inherited
//   tuneledger_job_pareto_optimal{job_id,tenant}            gauge   1/0: on the tenant's cost
//                                                           vs eval-loss front
//                                                           (server/core/pareto_front.h)
//   tuneledger_budget_threshold_crossings_total{tenant,threshold}  counter
//   tuneledger_projected_overruns_total{tenant}             counter
//   tuneledger_compute_cost_usd_total{tenant}               counter compute spent, by tenant
//   tuneledger_preemption_waste_usd_total{tenant}           counter of it, steps lost to a
//                                                           preemption and computed again
//   tuneledger_workers{state}                               gauge   workers by state
//   tuneledger_worker_price_usd_per_gpu_hour{worker_id,spot}  gauge
//   tuneledger_worker_gpus{worker_id}                       gauge
//   tuneledger_rpc_duration_seconds{method,code}            histogram
//
// Thread safety: every method may be called from any thread; one mutex guards the per-job
// and per-worker handle maps (prometheus-cpp's own metric updates are lock-free).
#ifndef TUNELEDGER_SERVER_METRICS_SERVER_METRICS_H_
#define TUNELEDGER_SERVER_METRICS_SERVER_METRICS_H_

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "base/clock.h"

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace tuneledger {

struct ServerMetricsOptions {
  // How long per-job series stay after the job ends (so a dashboard shows the end of a run).
  absl::Duration job_series_retention = absl::Minutes(10);
};

// What a progress report changes on a job's series.
struct JobProgressSample {
  int step = 0;
  double loss = 0;
  double tokens_per_second = 0;
  int64_t tokens = 0;  // cumulative tokens trained on in the job (all attempts)
  double progress_ratio = 0;
};

class ServerMetrics {
 public:
  ServerMetrics(prometheus::Registry& registry, const Clock& clock,
                ServerMetricsOptions options = {});
  ~ServerMetrics();
  ServerMetrics(const ServerMetrics&) = delete;
  ServerMetrics& operator=(const ServerMetrics&) = delete;

  // Queue: state names are Job.State names ("QUEUED", ...). Missing states are set to 0.
  void SetJobCounts(const std::map<std::string, int64_t>& count_by_state);
  void SetQueueDepth(int64_t depth);
  void SetUnschedulableJobs(int64_t count);

  void OnSubmitted(const std::string& tenant);
  // Counts the finish and schedules the job's series for removal.
  void OnFinished(const std::string& job_id, const std::string& tenant, const std::string& state,
                  const std::string& reason);

  void OnProgress(const std::string& job_id, const std::string& tenant,
                  const JobProgressSample& sample);
  void OnEvalLoss(const std::string& job_id, const std::string& tenant, double eval_loss);
  // budget_usd/thresholds are set on first call for the job (thresholds are fractions).
  void OnCost(const std::string& job_id, const std::string& tenant, double accrued_usd,
              double projected_usd, std::optional<double> budget_usd,
              const std::vector<double>& thresholds);
  // A finished job's place on the cost-quality plane (Scheduler::GetParetoFront): its total
  // cost and whether it is Pareto-optimal now. Only for jobs whose series are still kept (it
  // never brings back the series of a job that ended longer ago than the retention).
  void OnCostQuality(const std::string& job_id, double total_usd, bool pareto_optimal);
  // Adds compute spend to the per-tenant counter (delta >= 0).
  void AddComputeCost(const std::string& tenant, double delta_usd);
  // Adds the waste of a preempted or lost attempt (AttemptCost.wasted_usd, > 0) for `tenant`.
  void AddPreemptionWaste(const std::string& tenant, double usd);
  void OnBudgetThreshold(const std::string& tenant, double threshold);
  void OnProjectedOverrun(const std::string& tenant);

  // Workers: state names are Worker.State names ("IDLE", ...).
  void SetWorkerCounts(const std::map<std::string, int64_t>& count_by_state);
  void SetWorker(const std::string& worker_id, double price_per_gpu_hour, bool spot, int gpus);
  void RemoveWorker(const std::string& worker_id);

  // method: "/tuneledger.v1.JobService/SubmitJob"-style full name; code: "OK", "NOT_FOUND", ...
  void ObserveRpc(const std::string& method, const std::string& code, double seconds);

  // Removes per-job series whose retention has passed. Returns how many jobs were dropped.
  int RemoveExpired();

  // Number of jobs that currently own per-job series (for tests of bounded cardinality).
  int TrackedJobCount() const;

  // Every metric name a scrape can contain, as the exposition spells it (a histogram gives
  // its _bucket, _sum and _count), from the same table the families are built from. Tests use
  // it to check that deploy/ rules and dashboards only query names the server exports.
  static std::vector<std::string> ExposedMetricNames();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tuneledger

#endif  // TUNELEDGER_SERVER_METRICS_SERVER_METRICS_H_
