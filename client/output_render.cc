#include "client/output_render.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/progress_bar.h"
#include "client/table.h"
#include "client/value_format.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/timestamp.pb.h"
#include "google/protobuf/util/json_util.h"
#include "nlohmann/json.hpp"

namespace tuneledger::client {
namespace {

using tuneledger::v1::CostReport;
using tuneledger::v1::InheritedCost;
using tuneledger::v1::Job;
using tuneledger::v1::JobEvent;
using tuneledger::v1::JobSpec;
using tuneledger::v1::TrainingConfig;
using tuneledger::v1::Worker;

std::string OrDash(const std::string& text) { return text.empty() ? "-" : text; }

// A count that is 0 when it does not apply (an event's step or attempt): "-" then.
std::string CountOrDash(int64_t count) { return count == 0 ? "-" : absl::StrCat(count); }

// The name of an enum value; "-" for the X_UNSPECIFIED zero that means "not set".
template <typename Enum>
std::string EnumText(Enum value) {
  if (static_cast<int>(value) == 0) return "-";
  const google::protobuf::EnumValueDescriptor* described =
      google::protobuf::GetEnumDescriptor<Enum>()->FindValueByNumber(value);
  return described != nullptr ? described->name() : absl::StrCat(static_cast<int>(value));
}

using OrderedJson = nlohmann::ordered_json;

bool IsUnsetTimestamp(const google::protobuf::Message& message) {
  const auto* timestamp = dynamic_cast<const google::protobuf::Timestamp*>(&message);
  return timestamp != nullptr && timestamp->seconds() == 0 && timestamp->nanos() == 0;
}

// Removes from `json` (the proto JSON of `message`) what says "not set" rather than a value: an
// enum at its X_UNSPECIFIED zero and a zero Timestamp, which the JSON mapping would print as
// "REASON_UNSPECIFIED" and "1970-01-01T00:00:00Z". Walks nested and repeated messages.
void OmitUnsetFields(const google::protobuf::Message& message, OrderedJson& json) {
  if (!json.is_object()) return;
  const google::protobuf::Descriptor* descriptor = message.GetDescriptor();
  const google::protobuf::Reflection* reflection = message.GetReflection();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* field = descriptor->field(i);
    auto it = json.find(field->name());  // printed with preserve_proto_field_names
    if (it == json.end() || field->is_map()) continue;
    if (field->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_ENUM) {
      if (!field->is_repeated() && reflection->GetEnumValue(message, field) == 0) json.erase(it);
      continue;
    }
    if (field->cpp_type() != google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) continue;
    if (field->is_repeated()) {
      if (!it->is_array()) continue;
      const int size = reflection->FieldSize(message, field);
      for (int j = 0; j < size && j < static_cast<int>(it->size()); ++j) {
        OmitUnsetFields(reflection->GetRepeatedMessage(message, field, j), (*it)[j]);
      }
      continue;
    }
    const google::protobuf::Message& child = reflection->GetMessage(message, field);
    if (IsUnsetTimestamp(child)) {
      json.erase(it);
    } else {
      OmitUnsetFields(child, *it);
    }
  }
}

std::string ReasonText(Job::Reason reason) { return EnumText(reason); }

std::string StepText(const tuneledger::v1::Progress& progress) {
  if (progress.total_steps() > 0) return absl::StrCat(progress.step(), "/", progress.total_steps());
  if (progress.step() > 0) return absl::StrCat(progress.step());
  return "-";
}

std::string LossText(const tuneledger::v1::Progress& progress) {
  return progress.step() > 0 ? FormatReal(progress.loss()) : "-";
}

std::string InheritedKindText(InheritedCost::Kind kind) {
  switch (kind) {
    case InheritedCost::BASE_MODEL_PRETRAINING:
      return "base-model pre-training";
    case InheritedCost::DATA:
      return "data";
    case InheritedCost::LABOUR:
      return "labour";
    case InheritedCost::OTHER:
      return "other";
    default:
      return "unspecified";
  }
}

std::string LoraText(const JobSpec& spec) {
  const tuneledger::v1::LoraConfig& lora = spec.lora();
  std::string text = absl::StrCat("r=", lora.r(), " alpha=", lora.alpha());
  if (lora.has_dropout()) absl::StrAppend(&text, " dropout=", lora.dropout());
  absl::StrAppend(&text, " targets=", OrDash(absl::StrJoin(lora.target_modules(), ",")));
  if (lora.quantize_base() != tuneledger::v1::LoraConfig::QUANTIZE_BASE_UNSPECIFIED) {
    absl::StrAppend(&text, " quantize_base=",
                    tuneledger::v1::LoraConfig::QuantizeBase_Name(lora.quantize_base()));
  }
  return text;
}

std::string TrainingText(const JobSpec& spec) {
  const TrainingConfig& t = spec.training();
  std::string text;
  if (t.max_steps() > 0) {
    absl::StrAppend(&text, "max_steps=", t.max_steps());
  } else {
    absl::StrAppend(&text, "epochs=", t.epochs());
  }
  absl::StrAppend(&text, " batch=", t.batch_size(), "x", t.grad_accum_steps(),
                  " lr=", t.learning_rate(), " warmup=", t.warmup_steps());
  // Unset enums mean "the trainer's default" (precision depends on the device): left out.
  if (t.lr_schedule() != TrainingConfig::SCHEDULE_UNSPECIFIED) {
    absl::StrAppend(&text, " schedule=", TrainingConfig::LrSchedule_Name(t.lr_schedule()));
  }
  absl::StrAppend(&text, " seq_len=", t.seq_len(), " seed=", t.seed());
  if (t.precision() != TrainingConfig::PRECISION_UNSPECIFIED) {
    absl::StrAppend(&text, " precision=", TrainingConfig::Precision_Name(t.precision()));
  }
  absl::StrAppend(&text, " grad_checkpointing=", t.gradient_checkpointing() ? "on" : "off");
  return text;
}

std::string BudgetSpecText(const JobSpec& spec) {
  const tuneledger::v1::Budget& budget = spec.budget();
  if (!budget.has_usd()) return "none";
  std::vector<std::string> thresholds;
  for (double threshold : budget.thresholds()) thresholds.push_back(FormatPercent(threshold));
  std::string text =
      absl::StrCat(FormatUsd(budget.usd()), " thresholds ", OrDash(absl::StrJoin(thresholds, ",")));
  if (budget.policy() != tuneledger::v1::Budget::POLICY_UNSPECIFIED) {
    absl::StrAppend(&text, " policy ", tuneledger::v1::Budget::Policy_Name(budget.policy()));
  }
  return text;
}

// The ETA only while the job runs: a finished or waiting job has none.
std::string ProgressText(const tuneledger::v1::Progress& p, bool running) {
  if (p.step() == 0 && p.total_steps() == 0) return "-";
  std::string text = absl::StrCat("step ", StepText(p), " epoch ", FormatReal(p.epoch()), " loss ",
                                  FormatReal(p.loss()));
  if (p.has_eval_loss()) absl::StrAppend(&text, " eval_loss ", FormatReal(p.eval_loss()));
  absl::StrAppend(&text, " lr ", FormatReal(p.learning_rate()), " tokens ",
                  FormatCount(static_cast<double>(p.tokens())), " tok/s ",
                  FormatCount(p.tokens_per_second()), " elapsed ",
                  FormatDuration(p.elapsed_seconds()));
  if (running) absl::StrAppend(&text, " ETA ", EtaText(p));
  return text;
}

// Where a class's rate comes from: "3 past jobs" or "cold start".
std::string RateSourceText(const tuneledger::v1::WorkerClassEstimate& worker_class) {
  if (worker_class.cold_start()) return "cold start";
  return absl::StrCat(worker_class.past_jobs(),
                      worker_class.past_jobs() == 1 ? " past job" : " past jobs");
}

std::string CostSummaryText(const tuneledger::v1::CostSummary& cost) {
  const int decimals = UsdDecimals({cost.accrued_usd(), cost.projected_usd(), cost.budget_usd()});
  std::string text = absl::StrCat("accrued ", FormatUsd(cost.accrued_usd(), decimals),
                                  " projected ", FormatUsd(cost.projected_usd(), decimals));
  if (cost.has_budget_usd()) {
    absl::StrAppend(&text, " budget ", FormatUsd(cost.budget_usd(), decimals));
    if (cost.budget_usd() > 0) {
      absl::StrAppend(&text, " (", FormatPercent(cost.accrued_usd() / cost.budget_usd()), " used)");
    }
  }
  absl::StrAppend(&text, " gpu_time ", FormatDuration(cost.gpu_hours() * 3600));
  if (cost.rate_usd_per_hour() > 0) {
    absl::StrAppend(&text, " rate ", FormatUsd(cost.rate_usd_per_hour()), "/h");
  }
  return text;
}

}  // namespace

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string json;
  const auto status = google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!status.ok()) {
    // Only possible for a message that cannot be represented (e.g. an invalid Timestamp); say
    // so in the document rather than printing nothing.
    google::protobuf::Struct error;
    (*error.mutable_fields())["error"].set_string_value(
        absl::StrCat("cannot render as JSON: ", status.message().ToString()));
    google::protobuf::util::MessageToJsonString(error, &json);
    return json;
  }
  OrderedJson document = OrderedJson::parse(json, nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded()) return json;  // cannot happen: protobuf wrote it
  OmitUnsetFields(message, document);
  return document.dump();
}

std::string DescribeEvent(const JobEvent& event) {
  std::vector<std::string> parts;
  switch (event.kind()) {
    case JobEvent::STARTED:
      parts.push_back(absl::StrCat("attempt ", event.attempt()));
      if (!event.worker_id().empty())
        parts.push_back(absl::StrCat("on worker ", event.worker_id()));
      break;
    case JobEvent::CHECKPOINT:
      parts.push_back(absl::StrCat("step ", event.step()));
      if (!event.path().empty()) parts.push_back(absl::StrCat("at ", event.path()));
      break;
    case JobEvent::REQUEUED:
      parts.push_back(absl::StrCat("after attempt ", event.attempt()));
      break;
    // The server's message for these two repeats the fields in its own money format; the
    // fields alone say it once.
    case JobEvent::BUDGET_THRESHOLD:
      parts.push_back(absl::StrCat("accrued ", FormatUsd(event.cost_usd()), " crossed ",
                                   FormatPercent(event.threshold()), " of the budget"));
      break;
    case JobEvent::PROJECTED_OVERRUN:
      parts.push_back(
          absl::StrCat("projected total ", FormatUsd(event.value()), " exceeds the budget"));
      break;
    case JobEvent::EVAL:
      parts.push_back(
          absl::StrCat("step ", event.step(), " eval loss ", FormatReal(event.value())));
      break;
    case JobEvent::SUCCEEDED:
      if (!event.path().empty()) parts.push_back(absl::StrCat("adapter at ", event.path()));
      break;
    default:
      break;
  }
  if (event.reason() != Job::REASON_UNSPECIFIED) {
    parts.push_back(absl::StrCat("reason ", Job::Reason_Name(event.reason())));
  }
  const bool message_repeats_fields =
      event.kind() == JobEvent::BUDGET_THRESHOLD || event.kind() == JobEvent::PROJECTED_OVERRUN;
  if (!event.message().empty() && !message_repeats_fields) {
    parts.push_back(absl::StrCat("- ", event.message()));
  }
  return absl::StrJoin(parts, " ");
}

std::string EventLine(const JobEvent& event) {
  std::string line =
      absl::StrCat(FormatTimeOfDay(event.time()), " ", JobEvent::Kind_Name(event.kind()));
  const std::string description = DescribeEvent(event);
  if (!description.empty()) absl::StrAppend(&line, " ", description);
  return line;
}

std::string RenderSubmitted(const tuneledger::v1::SubmitJobResponse& response,
                            OutputFormat format) {
  if (format == OutputFormat::kJson) {
    OrderedJson document;
    document["deduplicated"] = response.deduplicated();
    document["id"] = response.job().id();
    document["estimate"] = OrderedJson::parse(ToJson(response.estimate()), nullptr,
                                              /*allow_exceptions=*/false);
    return document.dump() + "\n";
  }
  // Only the id, so that ID=$(tunectl submit ...) works.
  return response.job().id() + "\n";
}

std::string RenderSubmittedEstimate(const tuneledger::v1::JobEstimate& estimate) {
  std::string line = absl::StrCat("estimate: ", FormatCount(estimate.tokens_to_train()),
                                  " tokens (", estimate.tokens_counted() ? "counted" : "assumed",
                                  "), ", estimate.total_steps(), " steps; ");
  if (estimate.classes().empty()) {
    absl::StrAppend(&line, "no worker class to price it on");
  } else {
    const tuneledger::v1::WorkerClassEstimate& cheapest = estimate.classes(0);
    absl::StrAppend(&line, "cheapest ", FormatUsd(cheapest.usd()), " on ",
                    OrDash(cheapest.accelerator()), " at ",
                    FormatUsd(cheapest.price_per_gpu_hour()), "/GPU-hour",
                    cheapest.spot() ? " spot" : "", " (", FormatDuration(cheapest.seconds()), ", ",
                    RateSourceText(cheapest), ")");
  }
  return line + "\n";
}

std::string RenderEstimate(const tuneledger::v1::JobEstimate& estimate, OutputFormat format) {
  if (format == OutputFormat::kJson) return ToJson(estimate) + "\n";
  std::string out = absl::StrCat("Estimate (", FormatTimestamp(estimate.estimate_time()), ")\n");
  Table facts({});
  facts.AddRow({"examples", absl::StrCat(estimate.examples())});
  facts.AddRow({"steps", absl::StrCat(estimate.total_steps())});
  facts.AddRow(
      {"tokens to train", absl::StrCat(estimate.tokens_to_train(),
                                       estimate.tokens_counted() ? " (counted)" : " (assumed)")});
  facts.AddRow({"how", OrDash(estimate.tokens_basis())});
  if (estimate.scoring_tokens() > 0) {
    facts.AddRow({"scoring tokens",
                  absl::StrCat(estimate.scoring_tokens(), " (data selection, forward only)")});
  }
  facts.AddRow(
      {"model", estimate.model_params() > 0
                    ? absl::StrCat(FormatCount(static_cast<double>(estimate.model_params())),
                                   " parameters; shape ", estimate.model_shape())
                    : "-"});
  out += facts.Render(2);

  out += "\nWorker classes (cheapest first)\n";
  if (estimate.classes().empty()) {
    out += "  none: no active worker can run this job\n";
  } else {
    Table classes({"ACCELERATOR", "$/GPU-HOUR", "MARKET", "WORKERS", "GPUS", "TOKENS/S",
                   "RATE FROM", "TIME", "GPU-HOURS", "USD"});
    for (size_t column : {1, 3, 4, 5, 7, 8, 9}) classes.AlignRight(column);
    std::vector<double> prices, usd;
    for (const tuneledger::v1::WorkerClassEstimate& c : estimate.classes()) {
      prices.push_back(c.price_per_gpu_hour());
      usd.push_back(c.usd());
    }
    const std::vector<std::string> price_text = FormatUsdColumn(prices);
    const std::vector<std::string> usd_text = FormatUsdColumn(usd);
    for (int i = 0; i < estimate.classes_size(); ++i) {
      const tuneledger::v1::WorkerClassEstimate& c = estimate.classes(i);
      const bool rated = c.tokens_per_second() > 0;
      classes.AddRow({OrDash(c.accelerator()), price_text[i], c.spot() ? "spot" : "on-demand",
                      absl::StrCat(c.workers()), absl::StrCat(c.gpus()),
                      rated ? FormatCount(c.tokens_per_second()) : "-", RateSourceText(c),
                      rated ? FormatDuration(c.seconds()) : "-",
                      rated ? absl::StrFormat("%.4f", c.gpu_hours()) : "-",
                      rated ? usd_text[i] : "-"});
    }
    out += classes.Render(2);
    out += "\nRates\n";
    for (const tuneledger::v1::WorkerClassEstimate& c : estimate.classes()) {
      absl::StrAppend(&out, "  - ", OrDash(c.accelerator()), " ", FormatUsd(c.price_per_gpu_hour()),
                      c.spot() ? " spot" : " on-demand", ": ", OrDash(c.basis()), "\n");
    }
  }
  if (!estimate.notes().empty()) {
    out += "\nNotes\n";
    for (const std::string& note : estimate.notes()) absl::StrAppend(&out, "  - ", note, "\n");
  }
  return out;
}

std::string RenderJobList(const std::vector<Job>& jobs, OutputFormat format) {
  if (format == OutputFormat::kJson) {
    tuneledger::v1::ListJobsResponse document;  // pages were followed: no next page
    for (const Job& job : jobs) *document.add_jobs() = job;
    return ToJson(document) + "\n";
  }
  Table table({"ID", "NAME", "STATE", "REASON", "PRIO", "STEP", "LOSS", "COST", "BUDGET", "ATT",
               "WORKER", "CREATED"});
  for (size_t column : {0, 4, 5, 6, 7, 8, 9}) table.AlignRight(column);
  // COST and BUDGET: one money format for both columns.
  std::vector<double> amounts;
  for (const Job& job : jobs) {
    amounts.push_back(job.cost().accrued_usd());
    if (job.cost().has_budget_usd()) amounts.push_back(job.cost().budget_usd());
  }
  const int decimals = UsdDecimals(amounts);
  for (const Job& job : jobs) {
    table.AddRow({job.id(), OrDash(job.spec().name()), EnumText(job.state()),
                  ReasonText(job.reason()), absl::StrCat(job.spec().priority()),
                  StepText(job.progress()), LossText(job.progress()),
                  FormatUsd(job.cost().accrued_usd(), decimals),
                  job.cost().has_budget_usd() ? FormatUsd(job.cost().budget_usd(), decimals) : "-",
                  absl::StrCat(job.attempts()), OrDash(job.worker_id()),
                  FormatTimestamp(job.create_time())});
  }
  if (jobs.empty()) return "no jobs\n";
  return table.Render();
}

std::string RenderJob(const Job& job, OutputFormat format) {
  if (format == OutputFormat::kJson) return ToJson(job) + "\n";
  const JobSpec& spec = job.spec();
  Table table({});
  table.AddRow({"id", job.id()});
  table.AddRow({"name", OrDash(spec.name())});
  table.AddRow({"state", EnumText(job.state())});
  table.AddRow({"reason", ReasonText(job.reason())});
  table.AddRow({"message", OrDash(job.message())});
  table.AddRow({"tenant", OrDash(job.tenant())});
  table.AddRow({"priority", absl::StrCat(spec.priority())});
  // Only lost attempts count against max_attempts; preemptions are shown apart.
  table.AddRow({"attempts", absl::StrCat(job.attempts(), " (", job.failed_attempts(), " lost of ",
                                         spec.max_attempts(), " allowed, ",
                                         job.preempted_attempts(), " preempted)")});
  table.AddRow({"worker", OrDash(job.worker_id())});
  table.AddRow({"model", OrDash(spec.model_path())});
  table.AddRow({"train", OrDash(spec.train_path())});
  table.AddRow({"valid", OrDash(spec.valid_path())});
  table.AddRow({"lora", LoraText(spec)});
  table.AddRow({"training", TrainingText(spec)});
  table.AddRow({"gpus", absl::StrCat(spec.gpus())});
  table.AddRow({"progress", ProgressText(job.progress(), job.state() == Job::RUNNING)});
  table.AddRow({"cost", CostSummaryText(job.cost())});
  table.AddRow({"budget", BudgetSpecText(spec)});
  std::vector<std::string> labels;
  for (const auto& [key, value] : spec.labels()) labels.push_back(absl::StrCat(key, "=", value));
  std::sort(labels.begin(), labels.end());  // proto maps have no order
  table.AddRow({"labels", OrDash(absl::StrJoin(labels, ","))});
  std::vector<double> inherited_usd;
  for (const InheritedCost& cost : spec.inherited_costs()) inherited_usd.push_back(cost.usd());
  const std::vector<std::string> inherited_text = FormatUsdColumn(inherited_usd);
  for (int i = 0; i < spec.inherited_costs_size(); ++i) {
    const InheritedCost& cost = spec.inherited_costs(i);
    table.AddRow({"inherited", absl::StrCat(InheritedKindText(cost.kind()), " ", inherited_text[i],
                                            " (source: ", OrDash(cost.source()), ")")});
  }
  table.AddRow({"adapter", OrDash(job.adapter_path())});
  table.AddRow({"checkpoint", OrDash(job.last_checkpoint())});
  table.AddRow({"created", FormatTimestamp(job.create_time())});
  table.AddRow({"started", FormatTimestamp(job.start_time())});
  table.AddRow({"ended", FormatTimestamp(job.end_time())});
  return table.Render();
}

std::string RenderCancelled(const Job& job, OutputFormat format) {
  if (format == OutputFormat::kJson) return ToJson(job) + "\n";
  std::string text = absl::StrCat("job ", job.id(), " ", EnumText(job.state()));
  if (job.reason() != Job::REASON_UNSPECIFIED) {
    absl::StrAppend(&text, " (reason ", Job::Reason_Name(job.reason()), ")");
  }
  return text + "\n";
}

std::string RenderEvents(const std::vector<JobEvent>& events, OutputFormat format) {
  if (format == OutputFormat::kJson) {
    tuneledger::v1::ListJobEventsResponse document;
    for (const JobEvent& event : events) *document.add_events() = event;
    return ToJson(document) + "\n";
  }
  if (events.empty()) return "no events\n";
  Table table({"SEQ", "TIME", "KIND", "STATE", "ATTEMPT", "STEP", "COST", "DETAIL"});
  for (size_t column : {0, 4, 5, 6}) table.AlignRight(column);
  // COST is the accrued cost at each event (a PROJECTED_OVERRUN's projection is in DETAIL).
  std::vector<double> accrued;
  for (const JobEvent& event : events) {
    accrued.push_back(event.cost_usd());
  }
  const int decimals = UsdDecimals(accrued);
  for (const JobEvent& event : events) {
    table.AddRow({absl::StrCat(event.seq()), FormatTimestamp(event.time()), EnumText(event.kind()),
                  EnumText(event.state()), CountOrDash(event.attempt()), CountOrDash(event.step()),
                  FormatUsd(event.cost_usd(), decimals), DescribeEvent(event)});
  }
  return table.Render();
}

std::string RenderProgressHistory(const tuneledger::v1::ProgressHistory& history,
                                  OutputFormat format) {
  if (format == OutputFormat::kJson) return ToJson(history) + "\n";
  if (history.points().empty()) return "no progress yet\n";
  Table table({"TIME", "STEP", "EPOCH", "LOSS", "EVAL LOSS", "LR", "TOKENS", "TOKENS/S"});
  for (size_t column : {1, 2, 3, 4, 5, 6, 7}) table.AlignRight(column);
  for (const tuneledger::v1::Progress& p : history.points()) {
    table.AddRow({FormatTimestamp(p.update_time()), StepText(p), FormatReal(p.epoch()),
                  FormatReal(p.loss()), p.has_eval_loss() ? FormatReal(p.eval_loss()) : "-",
                  FormatReal(p.learning_rate()), FormatCount(static_cast<double>(p.tokens())),
                  FormatCount(p.tokens_per_second())});
  }
  return table.Render();
}

std::string RenderCostReport(const CostReport& report, OutputFormat format) {
  if (format == OutputFormat::kJson) return ToJson(report) + "\n";
  std::string out = absl::StrCat("Cost report for job ", report.job_id(), " (",
                                 EnumText(report.state()), ")\n\n");

  out += "Compute (measured by the service)\n";
  if (report.attempts().empty()) {
    out += "  no attempts yet\n";
  } else {
    // WALL and GPU TIME in the same units: GPU time is wall time x GPUs.
    // WASTED: lease time after the attempt's last checkpoint, lost to a preemption and redone.
    // SCORING: data-selection scoring, part of WALL.
    Table attempts({"ATTEMPT", "WORKER", "STATE", "GPUS", "$/GPU-HOUR", "MARKET", "WALL",
                    "GPU TIME", "USD", "WASTED", "SCORING"});
    for (size_t column : {0, 3, 4, 6, 7, 8, 9, 10}) attempts.AlignRight(column);
    std::vector<double> prices, usd;
    for (const tuneledger::v1::AttemptCost& a : report.attempts()) {
      prices.push_back(a.price_per_gpu_hour());
      usd.push_back(a.usd());
    }
    const std::vector<std::string> price_text = FormatUsdColumn(prices);
    const std::vector<std::string> usd_text = FormatUsdColumn(usd);
    for (int i = 0; i < report.attempts_size(); ++i) {
      const tuneledger::v1::AttemptCost& a = report.attempts(i);
      attempts.AddRow({absl::StrCat(a.attempt()), OrDash(a.worker_id()), OrDash(a.state()),
                       absl::StrCat(a.gpus()), price_text[i], a.spot() ? "spot" : "on-demand",
                       FormatDuration(a.seconds()), FormatDuration(a.gpu_hours() * 3600),
                       usd_text[i],
                       a.wasted_seconds() > 0 ? FormatDuration(a.wasted_seconds()) : "-",
                       a.scoring_seconds() > 0 ? FormatDuration(a.scoring_seconds()) : "-"});
    }
    out += attempts.Render(2);
  }
  const int compute_decimals =
      UsdDecimals({report.compute_usd(), report.spot_usd(), report.on_demand_usd()});
  absl::StrAppend(&out, "  compute total ", FormatUsd(report.compute_usd(), compute_decimals),
                  " for ", FormatDuration(report.compute_gpu_hours() * 3600), " of GPU time (spot ",
                  FormatUsd(report.spot_usd(), compute_decimals), ", on-demand ",
                  FormatUsd(report.on_demand_usd(), compute_decimals), ")\n");
  if (report.spot_saving_usd() > 0) {
    const int saving_decimals =
        UsdDecimals({report.on_demand_equivalent_usd(), report.spot_saving_usd()});
    absl::StrAppend(&out, "  on demand it would have cost ",
                    FormatUsd(report.on_demand_equivalent_usd(), saving_decimals), ": spot saved ",
                    FormatUsd(report.spot_saving_usd(), saving_decimals), "\n");
  }
  if (report.preemption_waste_usd() > 0) {
    absl::StrAppend(&out, "  preemption waste ", FormatUsd(report.preemption_waste_usd()), " for ",
                    FormatDuration(report.preemption_waste_gpu_hours() * 3600),
                    " of GPU time: steps lost after the last checkpoint and computed again\n");
  }
  if (report.scoring_usd() > 0) {
    absl::StrAppend(&out, "  data-selection scoring ", FormatUsd(report.scoring_usd()), " for ",
                    FormatDuration(report.scoring_gpu_hours() * 3600),
                    " of GPU time: the base model scoring the training examples\n");
  }
  if (report.has_estimated_usd()) {
    const tuneledger::v1::JobEstimate& estimate = report.estimate();
    const int decimals = UsdDecimals({report.estimated_usd(), report.compute_usd()});
    absl::StrAppend(&out, "  estimated at submit ", FormatUsd(report.estimated_usd(), decimals),
                    " (", FormatCount(static_cast<double>(estimate.tokens_to_train())), " tokens, ",
                    estimate.tokens_counted() ? "counted" : "assumed", "), billed ",
                    FormatUsd(report.compute_usd(), decimals));
    if (report.has_estimate_error()) {
      absl::StrAppend(&out, ": ", absl::StrFormat("%+.1f%%", 100 * report.estimate_error()),
                      " off the estimate\n");
    } else {
      out += " so far: the error is known once the job has ended\n";
    }
  }
  out += "\n";

  if (report.has_base_model()) {
    const tuneledger::v1::BaseModel& base = report.base_model();
    absl::StrAppend(
        &out, "Base model\n  ", OrDash(base.source()), ", licence ", OrDash(base.license()),
        base.license_origin().empty() ? "" : absl::StrCat(" (from ", base.license_origin(), ")"),
        "; folder ", OrDash(base.path()), "\n\n");
  }

  out += "Inherited (declared by the submitter)\n";
  if (report.inherited().empty()) {
    out += "  none declared\n";
  } else {
    Table inherited({"KIND", "USD", "SOURCE", "DESCRIPTION"});
    inherited.AlignRight(1);
    std::vector<double> usd;
    for (const InheritedCost& cost : report.inherited()) usd.push_back(cost.usd());
    const std::vector<std::string> usd_text = FormatUsdColumn(usd);
    for (int i = 0; i < report.inherited_size(); ++i) {
      const InheritedCost& cost = report.inherited(i);
      inherited.AddRow({InheritedKindText(cost.kind()), usd_text[i], OrDash(cost.source()),
                        OrDash(cost.description())});
    }
    out += inherited.Render(2);
  }
  absl::StrAppend(&out, "  inherited total ", FormatUsd(report.inherited_usd()), "\n\n");

  out += "Totals\n";
  Table totals({});
  totals.AlignRight(1);
  const int decimals =
      UsdDecimals({report.compute_usd(), report.inherited_usd(), report.total_usd(),
                   report.budget_usd(), report.overshoot_usd(), report.projected_usd()});
  totals.AddRow({"compute (this fine-tune)", FormatUsd(report.compute_usd(), decimals)});
  totals.AddRow({"inherited", FormatUsd(report.inherited_usd(), decimals)});
  totals.AddRow({"total (this model)", FormatUsd(report.total_usd(), decimals)});
  totals.AddRow({"compute share of total", FormatPercent(report.compute_share())});
  totals.AddRow(
      {"budget", report.has_budget_usd() ? FormatUsd(report.budget_usd(), decimals) : "none"});
  totals.AddRow({"overshoot", FormatUsd(report.overshoot_usd(), decimals)});
  totals.AddRow({"projected compute", FormatUsd(report.projected_usd(), decimals)});
  out += totals.Render(2);

  if (!report.notes().empty()) {
    out += "\nNotes\n";
    for (const std::string& note : report.notes()) absl::StrAppend(&out, "  - ", note, "\n");
  }
  return out;
}

std::string RenderParetoFront(const tuneledger::v1::ParetoFront& front, OutputFormat format) {
  if (format == OutputFormat::kJson) return ToJson(front) + "\n";
  std::string out;
  if (front.points().empty()) {
    out = "no finished jobs with an eval loss\n";
  } else {
    // Cheapest first; '*' marks the jobs no other succeeded job beats on both cost and loss.
    Table table(
        {"PARETO", "JOB", "NAME", "STATE", "EVAL LOSS", "TOTAL USD", "COMPUTE USD", "ENDED"});
    for (size_t column : {4, 5, 6}) table.AlignRight(column);
    std::vector<double> totals, compute;
    for (const tuneledger::v1::ParetoPoint& p : front.points()) {
      totals.push_back(p.total_usd());
      compute.push_back(p.compute_usd());
    }
    const std::vector<std::string> total_text = FormatUsdColumn(totals);
    const std::vector<std::string> compute_text = FormatUsdColumn(compute);
    int optimal = 0;
    for (int i = 0; i < front.points_size(); ++i) {
      const tuneledger::v1::ParetoPoint& p = front.points(i);
      if (p.pareto_optimal()) ++optimal;
      table.AddRow({p.pareto_optimal() ? "*" : "", p.job_id(), OrDash(p.name()),
                    EnumText(p.state()), FormatReal(p.eval_loss()), total_text[i], compute_text[i],
                    FormatTimestamp(p.end_time())});
    }
    out = table.Render();
    out += absl::StrCat("\n", optimal, " of ", front.points_size(),
                        " jobs are Pareto-optimal (*): succeeded, and no other succeeded job is "
                        "as cheap and as good with one of the two better.\n");
  }
  if (front.jobs_without_eval_loss() > 0) {
    out += absl::StrCat(front.jobs_without_eval_loss(),
                        " finished jobs are not shown: they reported no eval loss (no --valid "
                        "data, or they ended before the first evaluation).\n");
  }
  if (front.truncated()) {
    out += "Only the newest 10,000 finished jobs were read; narrow the set with --label.\n";
  }
  return out;
}

std::string RenderWorkers(const std::vector<Worker>& workers, OutputFormat format) {
  if (format == OutputFormat::kJson) {
    tuneledger::v1::ListWorkersResponse document;
    for (const Worker& worker : workers) *document.add_workers() = worker;
    return ToJson(document) + "\n";
  }
  if (workers.empty()) return "no workers\n";
  Table table({"ID", "HOST", "ACCELERATOR", "GPUS", "MEMORY", "$/GPU-HOUR", "MARKET", "STATE",
               "JOB", "LAST HEARTBEAT"});
  for (size_t column : {3, 4, 5}) table.AlignRight(column);
  std::vector<double> prices;
  for (const Worker& w : workers) prices.push_back(w.price_per_gpu_hour());
  const std::vector<std::string> price_text = FormatUsdColumn(prices);
  for (size_t i = 0; i < workers.size(); ++i) {
    const Worker& w = workers[i];
    table.AddRow({w.id(), OrDash(w.hostname()), OrDash(w.accelerator()), absl::StrCat(w.gpus()),
                  w.memory_bytes() > 0
                      ? absl::StrCat(FormatCount(static_cast<double>(w.memory_bytes())), "B")
                      : "-",
                  price_text[i], w.spot() ? "spot" : "on-demand", EnumText(w.state()),
                  OrDash(w.job_id()), FormatTimestamp(w.last_heartbeat_time())});
  }
  return table.Render();
}

}  // namespace tuneledger::client
