#include "server/core/cost_model.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/core/cost_card.h"
#include "server/core/job_states.h"

namespace tuneledger {
namespace {

constexpr double kSecondsPerHour = 3600.0;

}  // namespace

std::string InheritedCostKindName(v1::InheritedCost::Kind kind) {
  switch (kind) {
    case v1::InheritedCost::BASE_MODEL_PRETRAINING:
      return "base-model pre-training";
    case v1::InheritedCost::DATA:
      return "data";
    case v1::InheritedCost::LABOUR:
      return "labour";
    default:
      return "other";
  }
}

std::string FormatUsd(double usd) { return absl::StrFormat("$%.4f", usd); }

void BillAttempt(absl::Duration server_lease, v1::AttemptCost& attempt) {
  const AttemptPricing pricing{attempt.price_per_gpu_hour(), attempt.gpus(), attempt.spot()};
  attempt.set_seconds(std::max(0.0, absl::ToDoubleSeconds(server_lease)));
  attempt.set_gpu_hours(GpuHours(attempt.gpus(), server_lease));
  attempt.set_usd(AttemptCostUsd(pricing, server_lease));
}

ComputeTotals SumAttempts(const std::vector<v1::AttemptCost>& attempts) {
  ComputeTotals totals;
  for (const v1::AttemptCost& attempt : attempts) {
    totals.usd += attempt.usd();
    totals.gpu_hours += attempt.gpu_hours();
    (attempt.spot() ? totals.spot_usd : totals.on_demand_usd) += attempt.usd();
    const double on_demand_price = attempt.on_demand_price_per_gpu_hour() > 0
                                       ? attempt.on_demand_price_per_gpu_hour()
                                       : attempt.price_per_gpu_hour();
    totals.on_demand_equivalent_usd += on_demand_price * attempt.gpu_hours();
    totals.wasted_usd += attempt.wasted_usd();
    totals.wasted_gpu_hours += attempt.gpus() * attempt.wasted_seconds() / kSecondsPerHour;
    totals.scoring_usd += attempt.scoring_usd();
    totals.scoring_gpu_hours += attempt.gpus() * attempt.scoring_seconds() / kSecondsPerHour;
  }
  return totals;
}

void StepRateEstimator::Observe(absl::Time time, int step) {
  if (!first_.has_value()) first_ = Observation{time, step};
  latest_ = Observation{time, step};
}

std::optional<double> StepRateEstimator::StepsPerSecond() const {
  if (!first_.has_value() || !latest_.has_value()) return std::nullopt;
  const double seconds = absl::ToDoubleSeconds(latest_->time - first_->time);
  const int steps = latest_->step - first_->step;
  if (seconds <= 0 || steps <= 0) return std::nullopt;
  return steps / seconds;
}

int StepRateEstimator::StepsMeasured() const {
  if (!first_.has_value() || !latest_.has_value()) return 0;
  return latest_->step - first_->step;
}

std::optional<absl::Duration> RemainingTime(int step, int total_steps,
                                            std::optional<double> steps_per_second) {
  if (!steps_per_second.has_value() || *steps_per_second <= 0 || total_steps <= 0) {
    return std::nullopt;
  }
  const int steps_left = std::max(0, total_steps - step);
  return absl::Seconds(steps_left / *steps_per_second);
}

double ProjectedCostUsd(double accrued_usd, double rate_usd_per_hour,
                        std::optional<absl::Duration> remaining) {
  if (!remaining.has_value()) return accrued_usd;
  return accrued_usd + rate_usd_per_hour * absl::ToDoubleSeconds(*remaining) / kSecondsPerHour;
}

const v1::WorkerClassEstimate* EstimateForAttempts(const v1::JobEstimate& estimate,
                                                   const std::vector<v1::AttemptCost>& attempts) {
  if (estimate.classes().empty()) return nullptr;
  if (!attempts.empty()) {
    const v1::AttemptCost& newest = attempts.back();
    for (const v1::WorkerClassEstimate& worker_class : estimate.classes()) {
      if (worker_class.price_per_gpu_hour() == newest.price_per_gpu_hour() &&
          worker_class.spot() == newest.spot() && worker_class.gpus() == newest.gpus()) {
        return &worker_class;
      }
    }
  }
  return &estimate.classes(0);
}

v1::CostReport BuildCostReport(const v1::Job& job, const std::vector<v1::AttemptCost>& attempts,
                               const v1::JobEstimate& estimate, const v1::BaseModel& base_model) {
  v1::CostReport report;
  report.set_job_id(job.id());
  report.set_state(job.state());
  for (const v1::AttemptCost& attempt : attempts) *report.add_attempts() = attempt;

  const ComputeTotals compute = SumAttempts(attempts);
  report.set_compute_usd(compute.usd);
  report.set_compute_gpu_hours(compute.gpu_hours);
  report.set_spot_usd(compute.spot_usd);
  report.set_on_demand_usd(compute.on_demand_usd);
  report.set_on_demand_equivalent_usd(compute.on_demand_equivalent_usd);
  report.set_spot_saving_usd(compute.on_demand_equivalent_usd - compute.usd);
  report.set_preemption_waste_usd(compute.wasted_usd);
  report.set_preemption_waste_gpu_hours(compute.wasted_gpu_hours);
  report.set_scoring_usd(compute.scoring_usd);
  report.set_scoring_gpu_hours(compute.scoring_gpu_hours);
  *report.mutable_base_model() = base_model;
  const v1::WorkerClassEstimate* estimated = EstimateForAttempts(estimate, attempts);
  if (estimated != nullptr) {
    *report.mutable_estimate() = estimate;
    report.set_estimated_usd(estimated->usd());
    // An error only means something once the bill is final.
    if (IsFinalState(job.state()) && estimated->usd() > 0) {
      report.set_estimate_error((compute.usd - estimated->usd()) / estimated->usd());
    }
  }

  double inherited_usd = 0;
  for (const v1::InheritedCost& cost : job.spec().inherited_costs()) {
    *report.add_inherited() = cost;
    inherited_usd += cost.usd();
  }
  report.set_inherited_usd(inherited_usd);
  const double total = compute.usd + inherited_usd;
  report.set_total_usd(total);
  report.set_compute_share(total > 0 ? compute.usd / total : 1.0);

  const bool has_budget = job.spec().budget().has_usd();
  if (has_budget) {
    report.set_budget_usd(job.spec().budget().usd());
    report.set_overshoot_usd(std::max(0.0, compute.usd - job.spec().budget().usd()));
  }
  // A finished job has nothing left to spend; a running one projects from its progress.
  report.set_projected_usd(
      IsFinalState(job.state()) ? compute.usd : std::max(compute.usd, job.cost().projected_usd()));

  // Plain-language notes: what the numbers include and what they do not.
  int interrupted = 0;
  for (const v1::AttemptCost& attempt : attempts) {
    if (attempt.state() == "PREEMPTED" || attempt.state() == "LOST") ++interrupted;
  }
  report.add_notes(absl::StrCat(
      "Compute: ", FormatUsd(compute.usd), " for ", absl::StrFormat("%.4f", compute.gpu_hours),
      " GPU-hours over ", attempts.size(), attempts.size() == 1 ? " attempt" : " attempts",
      interrupted > 0 ? absl::StrCat(" (", interrupted, " preempted or lost, billed too)") : "",
      ", at each worker's declared price for the whole lease, model loading included."));
  if (compute.spot_usd > 0 && compute.on_demand_usd > 0) {
    report.add_notes(absl::StrCat("Spot: ", FormatUsd(compute.spot_usd),
                                  "; on-demand: ", FormatUsd(compute.on_demand_usd), "."));
  }
  if (report.spot_saving_usd() > 0) {
    report.add_notes(absl::StrCat("On demand the same GPU time would have cost ",
                                  FormatUsd(compute.on_demand_equivalent_usd),
                                  " at the workers' declared on-demand prices: spot saved ",
                                  FormatUsd(report.spot_saving_usd()), "."));
  }
  if (compute.wasted_usd > 0) {
    report.add_notes(absl::StrCat(
        "Preemption waste: ", FormatUsd(compute.wasted_usd), " (",
        absl::StrFormat("%.4f", compute.wasted_gpu_hours),
        " GPU-hours) paid for steps that a preemption or a lost worker threw away after the last "
        "checkpoint and that were computed again; it is part of the compute above."));
  }
  if (compute.scoring_usd > 0) {
    report.add_notes(absl::StrCat(
        "Data selection: scoring the training examples with the base model cost ",
        FormatUsd(compute.scoring_usd), " (", absl::StrFormat("%.4f", compute.scoring_gpu_hours),
        " GPU-hours); it is part of the compute above."));
  }
  if (estimated != nullptr) {
    report.add_notes(absl::StrCat(
        "Estimated at submit: ", FormatUsd(estimated->usd()), " on ", estimated->accelerator(),
        " at ", FormatUsd(estimated->price_per_gpu_hour()), "/GPU-hour",
        estimated->cold_start() ? " (a cold start: no past job of this shape on that class)" : "",
        report.has_estimate_error() ? absl::StrFormat("; the compute billed is %+.1f%% off it.",
                                                      100.0 * report.estimate_error())
                                    : "."));
  }
  if (job.spec().inherited_costs().empty()) {
    report.add_notes(
        "No inherited costs were declared: the total covers this fine-tune's compute only, not "
        "the base model's pre-training, the data or the people.");
  } else {
    for (const v1::InheritedCost& cost : job.spec().inherited_costs()) {
      report.add_notes(absl::StrCat("Inherited (", InheritedCostKindName(cost.kind()),
                                    "): ", FormatUsd(cost.usd()),
                                    ", declared by the submitter; source: ", cost.source(), "."));
    }
    report.add_notes(absl::StrCat("The cost of this fine-tune is ", FormatUsd(compute.usd),
                                  "; the cost of this model, with "
                                  "what it inherits, is ",
                                  FormatUsd(total), " (compute is ",
                                  absl::StrFormat("%.2f", 100.0 * report.compute_share()),
                                  "% of it)."));
  }
  if (has_budget && report.overshoot_usd() > 0) {
    report.add_notes(absl::StrCat(
        "Compute exceeded the budget of ", FormatUsd(job.spec().budget().usd()), " by ",
        FormatUsd(report.overshoot_usd()),
        ": enforcement acts within one report interval, and that interval is billed."));
  }
  report.set_card_markdown(RenderCostCard(job, report));
  return report;
}

}  // namespace tuneledger
