// The cost model (README.md "Job lifecycle and cost"): the ONE place that computes money (the bare
// attempt formula lives in base/compute_cost.h so the worker agent bills with it too).
// Pure functions.
//
//   attempt cost = price_per_gpu_hour x gpus x lease seconds / 3600
//   job cost     = sum over the job's attempts
//   billed       = the server's clock alone: what a worker reports is never believed
//   projected    = accrued + rate x remaining time; remaining = steps left / observed step rate
//
// When a lease starts and ends is the scheduler's business (see scheduler.h); this file only
// turns durations and prices into dollars and GPU-hours, and builds the CostReport.
// Thread safety: free functions are stateless; StepRateEstimator is not thread-safe (its owner
// guards it).
#ifndef TUNELEDGER_SERVER_CORE_COST_MODEL_H_
#define TUNELEDGER_SERVER_CORE_COST_MODEL_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "base/compute_cost.h"
#include "tuneledger/v1/jobs.pb.h"

namespace tuneledger {

// The billed figures after a report: one attempt's and its job's totals.
struct AttemptBill {
  double seconds = 0;  // lease seconds on the server clock
  double gpu_hours = 0;
  double usd = 0;
  v1::CostSummary job_cost;  // accrued_usd, gpu_hours, projected_usd, rate_usd_per_hour
};

// "$1.2345": four decimals, because a short CPU fine-tune costs fractions of a cent. Every
// message that states money uses it.
std::string FormatUsd(double usd);

// "base-model pre-training", "data", "labour" or "other": how bills name an inherited cost's
// kind.
std::string InheritedCostKindName(v1::InheritedCost::Kind kind);

// Fills seconds, gpu_hours and usd of one attempt line from its pricing fields (gpus,
// price_per_gpu_hour) and the billed lease, measured on the server's clock (the scheduler
// decides which stretch of it is billed: scheduler.h).
void BillAttempt(absl::Duration server_lease, v1::AttemptCost& attempt);

// Totals over a job's attempts.
struct ComputeTotals {
  double usd = 0;
  double gpu_hours = 0;
  double spot_usd = 0;
  double on_demand_usd = 0;
  // Each attempt's GPU-hours at its worker's declared on-demand price (its own price if none).
  double on_demand_equivalent_usd = 0;
  double wasted_usd = 0;  // preemption waste (AttemptCost.wasted_*)
  double wasted_gpu_hours = 0;
  double scoring_usd = 0;  // data-selection scoring (AttemptCost.scoring_*)
  double scoring_gpu_hours = 0;
};
ComputeTotals SumAttempts(const std::vector<v1::AttemptCost>& attempts);

// The step rate one attempt has shown: from its first to its latest observation. A resumed
// attempt starts at a step > 0, so the rate is the steps advanced, not the step number.
class StepRateEstimator {
 public:
  void Observe(absl::Time time, int step);
  // Unknown until the attempt has advanced at least one step over a positive time.
  std::optional<double> StepsPerSecond() const;
  // Steps between the first and the latest observation (what the rate is measured over).
  int StepsMeasured() const;

 private:
  struct Observation {
    absl::Time time;
    int step = 0;
  };
  std::optional<Observation> first_;
  std::optional<Observation> latest_;
};

// Time left at the observed rate; unknown without a rate or a total.
std::optional<absl::Duration> RemainingTime(int step, int total_steps,
                                            std::optional<double> steps_per_second);

// accrued + rate x remaining; = accrued when the remaining time is unknown.
double ProjectedCostUsd(double accrued_usd, double rate_usd_per_hour,
                        std::optional<absl::Duration> remaining);

// The worker class of `estimate` that the bill is compared with: the one with the price, spot flag
// and GPUs of the newest attempt, else the cheapest (the first); null without classes.
const v1::WorkerClassEstimate* EstimateForAttempts(const v1::JobEstimate& estimate,
                                                   const std::vector<v1::AttemptCost>& attempts);

// The whole bill of a job: compute per attempt (spot vs on-demand), the inherited costs the
// spec declares (with their sources), totals, compute share, overshoot past the budget, the
// estimate recorded at submit against the compute billed, the base model's source and licence,
// plain notes saying what the numbers include, and all of it as a cost card (cost_card.h).
// `job` gives the spec, state and projected cost; `attempts` carry billed figures (running ones
// billed up to now); `estimate` and `base_model` are what SubmitJob recorded (empty: nothing).
v1::CostReport BuildCostReport(
    const v1::Job& job, const std::vector<v1::AttemptCost>& attempts,
    const v1::JobEstimate& estimate = v1::JobEstimate::default_instance(),
    const v1::BaseModel& base_model = v1::BaseModel::default_instance());

}  // namespace tuneledger

#endif  // TUNELEDGER_SERVER_CORE_COST_MODEL_H_
