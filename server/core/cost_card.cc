#include "server/core/cost_card.h"

#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/time/time.h"
#include "server/core/cost_model.h"
#include "server/core/job_states.h"

namespace tuneledger {
namespace {

// Free text (job names, sources, licences) inside one table cell or line: no line breaks, and a
// '|' that does not end the cell.
std::string Cell(const std::string& text) {
  if (text.empty()) return "-";
  return absl::StrReplaceAll(text, {{"|", "\\|"}, {"\r", " "}, {"\n", " "}});
}

std::string Hours(double gpu_hours) { return absl::StrFormat("%.4f", gpu_hours); }

std::string Seconds(double seconds) { return absl::StrFormat("%.1f", seconds); }

std::string TimeText(const google::protobuf::Timestamp& time) {
  if (time.seconds() == 0 && time.nanos() == 0) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", absl::FromUnixSeconds(time.seconds()),
                          absl::UTCTimeZone());
}

void AppendBaseModel(const v1::Job& job, const v1::CostReport& report, std::string& out) {
  const v1::BaseModel& model = report.base_model();
  const std::string path = model.path().empty() ? job.spec().model_path() : model.path();
  absl::StrAppend(&out, "| Base model | ", Cell(model.source().empty() ? path : model.source()),
                  " |\n");
  absl::StrAppend(
      &out, "| Base model licence | ", Cell(model.license().empty() ? "unknown" : model.license()),
      model.license_origin().empty() ? " (no README front matter or LICENSE file said)"
                                     : absl::StrCat(" (from ", Cell(model.license_origin()), ")"),
      " |\n");
  absl::StrAppend(&out, "| Base model folder | ", Cell(path), " |\n");
}

void AppendAttempts(const v1::CostReport& report, std::string& out) {
  absl::StrAppend(&out,
                  "\n## Attempts (every one is billed)\n\n"
                  "| # | Worker | Ended | GPUs | USD/GPU-hour | Spot | Lease s | GPU-hours | USD "
                  "| Scoring s | Wasted s |\n"
                  "|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const v1::AttemptCost& attempt : report.attempts()) {
    absl::StrAppend(&out, "| ", attempt.attempt(), " | ", Cell(attempt.worker_id()), " | ",
                    attempt.state(), " | ", attempt.gpus(), " | ",
                    FormatUsd(attempt.price_per_gpu_hour()), " | ", attempt.spot() ? "yes" : "no",
                    " | ", Seconds(attempt.seconds()), " | ", Hours(attempt.gpu_hours()), " | ",
                    FormatUsd(attempt.usd()), " | ", Seconds(attempt.scoring_seconds()), " | ",
                    Seconds(attempt.wasted_seconds()), " |\n");
  }
  if (report.attempts().empty())
    absl::StrAppend(&out, "| - | no attempt ran | | | | | | | | | |\n");
}

void AppendBill(const v1::CostReport& report, std::string& out) {
  absl::StrAppend(&out,
                  "\n## The bill\n\n"
                  "| Line | USD | Source |\n"
                  "|---|---|---|\n");
  absl::StrAppend(
      &out, "| Compute, ", report.attempts_size(),
      report.attempts_size() == 1 ? " attempt" : " attempts", " (",
      Hours(report.compute_gpu_hours()), " GPU-hours) | ", FormatUsd(report.compute_usd()),
      " | measured: lease time on the server's clock x each worker's declared price |\n");
  if (report.scoring_usd() > 0) {
    absl::StrAppend(&out, "| - of which data-selection scoring (",
                    Hours(report.scoring_gpu_hours()), " GPU-hours) | ",
                    FormatUsd(report.scoring_usd()), " | measured, part of compute |\n");
  }
  if (report.preemption_waste_usd() > 0) {
    absl::StrAppend(&out, "| - of which preemption waste (",
                    Hours(report.preemption_waste_gpu_hours()), " GPU-hours) | ",
                    FormatUsd(report.preemption_waste_usd()),
                    " | measured: steps lost after the last checkpoint, part of compute |\n");
  }
  std::set<int> declared;
  for (const v1::InheritedCost& cost : report.inherited()) {
    declared.insert(cost.kind());
    absl::StrAppend(
        &out, "| Inherited: ", InheritedCostKindName(cost.kind()),
        cost.description().empty() ? "" : absl::StrCat(" (", Cell(cost.description()), ")"), " | ",
        FormatUsd(cost.usd()), " | declared by the submitter: ", Cell(cost.source()), " |\n");
  }
  absl::StrAppend(&out, "| **Total** | **", FormatUsd(report.total_usd()),
                  "** | compute + declared inherited costs |\n");
  absl::StrAppend(&out, "\nCompute is ", absl::StrFormat("%.2f", 100.0 * report.compute_share()),
                  "% of the total.");
  std::string missing;
  for (const v1::InheritedCost::Kind kind : {v1::InheritedCost::BASE_MODEL_PRETRAINING,
                                             v1::InheritedCost::DATA, v1::InheritedCost::LABOUR}) {
    if (declared.count(kind) > 0) continue;
    absl::StrAppend(&missing, missing.empty() ? "" : ", ", InheritedCostKindName(kind));
  }
  if (!missing.empty()) {
    absl::StrAppend(&out, " Not declared, so not in the total: ", missing,
                    ". The whole cost of this model is higher than this card says.");
  }
  absl::StrAppend(&out, "\n");
}

void AppendEstimateAndSpot(const v1::CostReport& report, std::string& out) {
  absl::StrAppend(&out, "\n## Estimate, spot and waste\n\n");
  if (report.has_estimated_usd()) {
    const v1::JobEstimate& estimate = report.estimate();
    absl::StrAppend(&out, "- Estimated at submit: ", FormatUsd(report.estimated_usd()), " for ",
                    estimate.tokens_to_train(), " tokens in ", estimate.total_steps(), " steps (",
                    Cell(estimate.tokens_basis()), ").");
    if (report.has_estimate_error()) {
      absl::StrAppend(&out, absl::StrFormat(" Billed compute is %+.1f%% off the estimate.",
                                            100.0 * report.estimate_error()));
    }
    absl::StrAppend(&out, "\n");
  } else {
    absl::StrAppend(&out, "- No estimate was recorded at submit.\n");
  }
  absl::StrAppend(&out, "- On demand the same GPU time would have cost ",
                  FormatUsd(report.on_demand_equivalent_usd()), "; spot saved ",
                  FormatUsd(report.spot_saving_usd()), ".\n");
  absl::StrAppend(&out, "- Preemption waste: ", FormatUsd(report.preemption_waste_usd()), " (",
                  Hours(report.preemption_waste_gpu_hours()), " GPU-hours).\n");
}

}  // namespace

std::string RenderCostCard(const v1::Job& job, const v1::CostReport& report) {
  std::string out;
  absl::StrAppend(
      &out, "# Cost card: ",
      Cell(job.spec().name().empty() ? absl::StrCat("job ", job.id()) : job.spec().name()), "\n\n");
  absl::StrAppend(&out, "| | |\n|---|---|\n");
  absl::StrAppend(&out, "| Job | ", Cell(job.id()), " (tenant ", Cell(job.tenant()), ") |\n");
  absl::StrAppend(&out, "| State | ", v1::Job::State_Name(job.state()),
                  job.reason() != v1::Job::REASON_UNSPECIFIED
                      ? absl::StrCat(", reason ", v1::Job::Reason_Name(job.reason()))
                      : "",
                  IsFinalState(job.state()) ? "" : " (the bill is not final)", " |\n");
  absl::StrAppend(&out, "| Submitted / ended | ", TimeText(job.create_time()), " / ",
                  TimeText(job.end_time()), " |\n");
  AppendBaseModel(job, report, out);
  if (!job.adapter_path().empty()) {
    absl::StrAppend(&out, "| Adapter | ", Cell(job.adapter_path()), " |\n");
  }
  AppendBill(report, out);
  AppendAttempts(report, out);
  AppendEstimateAndSpot(report, out);
  absl::StrAppend(&out,
                  "\nWritten by tuneledger-server. Compute lines are measured; inherited lines are "
                  "what the submitter declared, with the source they gave.\n");
  return out;
}

}  // namespace tuneledger
