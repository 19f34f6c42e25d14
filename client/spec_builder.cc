#include "client/spec_builder.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/status_macros.h"
#include "google/protobuf/util/json_util.h"

namespace tuneledger::client {
namespace {

using tuneledger::v1::Budget;
using tuneledger::v1::DataSelection;
using tuneledger::v1::InheritedCost;
using tuneledger::v1::JobSpec;
using tuneledger::v1::LoraConfig;
using tuneledger::v1::TrainingConfig;

absl::Status FlagError(absl::string_view flag, absl::string_view problem, absl::string_view value) {
  return absl::InvalidArgumentError(absl::StrCat("--", flag, ": ", problem, ", got '", value, "'"));
}

absl::StatusOr<int32_t> ParseInt(absl::string_view flag, const std::string& value) {
  int32_t parsed = 0;
  if (!absl::SimpleAtoi(value, &parsed)) return FlagError(flag, "must be an integer", value);
  return parsed;
}

absl::StatusOr<double> ParseDouble(absl::string_view flag, const std::string& value) {
  double parsed = 0;
  if (!absl::SimpleAtod(value, &parsed)) return FlagError(flag, "must be a number", value);
  return parsed;
}

// Comma-separated, blanks trimmed, empty items dropped.
std::vector<std::string> SplitList(const std::string& value) {
  std::vector<std::string> items;
  for (absl::string_view item : absl::StrSplit(value, ',')) {
    item = absl::StripAsciiWhitespace(item);
    if (!item.empty()) items.emplace_back(item);
  }
  return items;
}

// The integer and number flags that set one field each. Range checks are the server's.
struct IntField {
  absl::string_view flag;
  void (*set)(JobSpec&, int32_t);
};
struct DoubleField {
  absl::string_view flag;
  void (*set)(JobSpec&, double);
};

const IntField kIntFields[] = {
    {"lora-r", [](JobSpec& s, int32_t v) { s.mutable_lora()->set_r(v); }},
    {"batch-size", [](JobSpec& s, int32_t v) { s.mutable_training()->set_batch_size(v); }},
    {"grad-accum", [](JobSpec& s, int32_t v) { s.mutable_training()->set_grad_accum_steps(v); }},
    {"warmup-steps", [](JobSpec& s, int32_t v) { s.mutable_training()->set_warmup_steps(v); }},
    {"seq-len", [](JobSpec& s, int32_t v) { s.mutable_training()->set_seq_len(v); }},
    {"seed", [](JobSpec& s, int32_t v) { s.mutable_training()->set_seed(v); }},
    {"checkpoint-every",
     [](JobSpec& s, int32_t v) { s.mutable_training()->set_checkpoint_every_steps(v); }},
    {"eval-every", [](JobSpec& s, int32_t v) { s.mutable_training()->set_eval_every_steps(v); }},
    {"priority", [](JobSpec& s, int32_t v) { s.set_priority(v); }},
    {"gpus", [](JobSpec& s, int32_t v) { s.set_gpus(v); }},
    {"max-attempts", [](JobSpec& s, int32_t v) { s.set_max_attempts(v); }},
    {"early-stop-patience",
     [](JobSpec& s, int32_t v) {
       s.mutable_training()->mutable_early_stop()->set_patience_evals(v);
     }},
};

const DoubleField kDoubleFields[] = {
    {"lora-alpha", [](JobSpec& s, double v) { s.mutable_lora()->set_alpha(v); }},
    {"lora-dropout", [](JobSpec& s, double v) { s.mutable_lora()->set_dropout(v); }},
    {"lr", [](JobSpec& s, double v) { s.mutable_training()->set_learning_rate(v); }},
    {"weight-decay", [](JobSpec& s, double v) { s.mutable_training()->set_weight_decay(v); }},
    {"max-grad-norm", [](JobSpec& s, double v) { s.mutable_training()->set_max_grad_norm(v); }},
    {"budget-usd", [](JobSpec& s, double v) { s.mutable_budget()->set_usd(v); }},
    {"early-stop-min-delta",
     [](JobSpec& s, double v) { s.mutable_training()->mutable_early_stop()->set_min_delta(v); }},
    {"divergence-factor",
     [](JobSpec& s, double v) {
       s.mutable_training()->mutable_early_stop()->set_divergence_factor(v);
     }},
    {"keep-fraction",
     [](JobSpec& s, double v) {
       s.mutable_training()->mutable_data_selection()->set_keep_fraction(v);
     }},
};

absl::StatusOr<TrainingConfig::Precision> ParsePrecision(const std::string& value) {
  const std::string lower = absl::AsciiStrToLower(value);
  if (lower == "fp32") return TrainingConfig::FP32;
  if (lower == "bf16") return TrainingConfig::BF16;
  if (lower == "fp16") return TrainingConfig::FP16;
  return FlagError("precision", "must be fp32, bf16 or fp16", value);
}

absl::StatusOr<LoraConfig::QuantizeBase> ParseQuantizeBase(const std::string& value) {
  const std::string lower = absl::AsciiStrToLower(value);
  if (lower == "none") return LoraConfig::NONE;
  if (lower == "nf4") return LoraConfig::NF4;
  if (lower == "nf4-dq") return LoraConfig::NF4_DQ;
  if (lower == "int8") return LoraConfig::INT8;
  return FlagError("quantize-base", "must be none, nf4, nf4-dq or int8", value);
}

absl::StatusOr<TrainingConfig::LrSchedule> ParseSchedule(const std::string& value) {
  const std::string lower = absl::AsciiStrToLower(value);
  if (lower == "cosine") return TrainingConfig::COSINE;
  if (lower == "linear") return TrainingConfig::LINEAR;
  if (lower == "constant") return TrainingConfig::CONSTANT;
  return FlagError("lr-schedule", "must be cosine, linear or constant", value);
}

absl::StatusOr<DataSelection::Method> ParseSelectionMethod(const std::string& value) {
  const std::string lower = absl::AsciiStrToLower(value);
  if (lower == "entropy") return DataSelection::ENTROPY;
  if (lower == "loss") return DataSelection::LOSS;
  return FlagError("select-data", "must be entropy or loss", value);
}

absl::StatusOr<Budget::Policy> ParsePolicy(const std::string& value) {
  const std::string lower = absl::AsciiStrToLower(value);
  if (lower == "cancel") return Budget::CANCEL;
  if (lower == "alert-only" || lower == "alert_only") return Budget::ALERT_ONLY;
  return FlagError("budget-policy", "must be cancel or alert-only", value);
}

absl::StatusOr<InheritedCost::Kind> ParseCostKind(absl::string_view kind) {
  const std::string lower = absl::AsciiStrToLower(kind);
  if (lower == "pretraining" || lower == "base-model-pretraining" ||
      lower == "base_model_pretraining") {
    return InheritedCost::BASE_MODEL_PRETRAINING;
  }
  if (lower == "data") return InheritedCost::DATA;
  if (lower == "labour" || lower == "labor") return InheritedCost::LABOUR;
  if (lower == "other") return InheritedCost::OTHER;
  return FlagError("inherited-cost", "KIND must be pretraining, data, labour or other", kind);
}

// KIND=USD[:SOURCE]; the source may itself contain ':'.
absl::StatusOr<InheritedCost> ParseInheritedCost(const std::string& value) {
  const size_t eq = value.find('=');
  if (eq == std::string::npos) {
    return FlagError("inherited-cost", "must be KIND=USD:SOURCE", value);
  }
  TL_ASSIGN_OR_RETURN(const InheritedCost::Kind kind, ParseCostKind(value.substr(0, eq)));
  std::string rest = value.substr(eq + 1);
  std::string source;
  if (const size_t colon = rest.find(':'); colon != std::string::npos) {
    source = std::string(absl::StripAsciiWhitespace(rest.substr(colon + 1)));
    rest = rest.substr(0, colon);
  }
  double usd = 0;
  if (!absl::SimpleAtod(rest, &usd)) {
    return FlagError("inherited-cost", "USD must be a number (KIND=USD:SOURCE)", value);
  }
  InheritedCost cost;
  cost.set_kind(kind);
  cost.set_usd(usd);
  cost.set_source(source);
  return cost;
}

absl::Status ApplyEnumAndListFlags(const FlagValues& flags, JobSpec& spec) {
  if (flags.Has("precision")) {
    TL_ASSIGN_OR_RETURN(const TrainingConfig::Precision precision,
                        ParsePrecision(flags.Last("precision")));
    spec.mutable_training()->set_precision(precision);
  }
  if (flags.Has("quantize-base")) {
    TL_ASSIGN_OR_RETURN(const LoraConfig::QuantizeBase quantize_base,
                        ParseQuantizeBase(flags.Last("quantize-base")));
    spec.mutable_lora()->set_quantize_base(quantize_base);
  }
  if (flags.Has("lr-schedule")) {
    TL_ASSIGN_OR_RETURN(const TrainingConfig::LrSchedule schedule,
                        ParseSchedule(flags.Last("lr-schedule")));
    spec.mutable_training()->set_lr_schedule(schedule);
  }
  if (flags.Has("select-data")) {
    TL_ASSIGN_OR_RETURN(const DataSelection::Method method,
                        ParseSelectionMethod(flags.Last("select-data")));
    spec.mutable_training()->mutable_data_selection()->set_method(method);
  }
  if (flags.Has("budget-policy")) {
    TL_ASSIGN_OR_RETURN(const Budget::Policy policy, ParsePolicy(flags.Last("budget-policy")));
    spec.mutable_budget()->set_policy(policy);
  }
  if (flags.Has("grad-checkpointing")) {
    spec.mutable_training()->set_gradient_checkpointing(flags.Last("grad-checkpointing") == "true");
  }
  if (flags.Has("target-modules")) {
    spec.mutable_lora()->clear_target_modules();
    for (std::string& module : SplitList(flags.Last("target-modules"))) {
      spec.mutable_lora()->add_target_modules(std::move(module));
    }
  }
  if (flags.Has("budget-thresholds")) {
    spec.mutable_budget()->clear_thresholds();
    for (const std::string& item : SplitList(flags.Last("budget-thresholds"))) {
      TL_ASSIGN_OR_RETURN(const double threshold, ParseDouble("budget-thresholds", item));
      spec.mutable_budget()->add_thresholds(threshold);
    }
  }
  TL_ASSIGN_OR_RETURN(const auto labels, ParseLabelFlags(flags));
  for (const auto& [key, value] : labels) (*spec.mutable_labels())[key] = value;
  for (const std::string& value : flags.All("inherited-cost")) {
    TL_ASSIGN_OR_RETURN(InheritedCost cost, ParseInheritedCost(value));
    *spec.add_inherited_costs() = std::move(cost);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::map<std::string, std::string>> ParseLabelFlags(const FlagValues& flags) {
  std::map<std::string, std::string> labels;
  for (const std::string& label : flags.All("label")) {
    const size_t eq = label.find('=');
    if (eq == std::string::npos || eq == 0) return FlagError("label", "must be KEY=VALUE", label);
    labels[label.substr(0, eq)] = label.substr(eq + 1);
  }
  return labels;
}

absl::StatusOr<JobSpec> ParseJobSpecJson(absl::string_view json) {
  JobSpec spec;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), &spec, options);
  if (!status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a JobSpec in the proto JSON mapping: ", status.message().ToString()));
  }
  return spec;
}

std::string AbsolutePath(const std::string& path, const std::string& base_dir) {
  if (path.empty()) return path;
  std::filesystem::path p(path);
  if (p.is_relative()) p = std::filesystem::path(base_dir) / p;
  return p.lexically_normal().string();
}

absl::Status ApplySubmitFlags(const FlagValues& flags, const std::string& cwd, JobSpec& spec) {
  if (flags.Has("model")) spec.set_model_path(AbsolutePath(flags.Last("model"), cwd));
  if (flags.Has("train")) spec.set_train_path(AbsolutePath(flags.Last("train"), cwd));
  if (flags.Has("valid")) spec.set_valid_path(AbsolutePath(flags.Last("valid"), cwd));
  if (flags.Has("name")) spec.set_name(flags.Last("name"));
  if (flags.Has("request-id")) spec.set_client_request_id(flags.Last("request-id"));

  if (flags.Has("epochs") && flags.Has("max-steps")) {
    return absl::InvalidArgumentError("--epochs and --max-steps: give one of them, not both");
  }
  // Either flag replaces both fields of a --spec file, so the result never has both set.
  if (flags.Has("epochs")) {
    TL_ASSIGN_OR_RETURN(const int32_t epochs, ParseInt("epochs", flags.Last("epochs")));
    spec.mutable_training()->set_epochs(epochs);
    spec.mutable_training()->set_max_steps(0);
  }
  if (flags.Has("max-steps")) {
    TL_ASSIGN_OR_RETURN(const int32_t steps, ParseInt("max-steps", flags.Last("max-steps")));
    spec.mutable_training()->set_max_steps(steps);
    spec.mutable_training()->set_epochs(0);
  }
  for (const IntField& field : kIntFields) {
    if (!flags.Has(field.flag)) continue;
    TL_ASSIGN_OR_RETURN(const int32_t value, ParseInt(field.flag, flags.Last(field.flag)));
    field.set(spec, value);
  }
  for (const DoubleField& field : kDoubleFields) {
    if (!flags.Has(field.flag)) continue;
    TL_ASSIGN_OR_RETURN(const double value, ParseDouble(field.flag, flags.Last(field.flag)));
    field.set(spec, value);
  }
  return ApplyEnumAndListFlags(flags, spec);
}

absl::StatusOr<JobSpec> BuildJobSpec(const FlagValues& flags, const std::string& cwd) {
  JobSpec spec;
  if (flags.Has("spec")) {
    const std::string path = AbsolutePath(flags.Last("spec"), cwd);
    std::ifstream in(path);
    if (!in) {
      // A local file the caller named: a bad flag value (usage), not a server's NOT_FOUND.
      return absl::InvalidArgumentError(
          absl::StrCat("--spec: cannot read ", path, " (", std::strerror(errno), ")"));
    }
    std::stringstream text;
    text << in.rdbuf();
    absl::StatusOr<JobSpec> parsed = ParseJobSpecJson(text.str());
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--spec ", path, ": ", parsed.status().message()));
    }
    spec = *std::move(parsed);
    const std::string spec_dir = std::filesystem::path(path).parent_path().string();
    spec.set_model_path(AbsolutePath(spec.model_path(), spec_dir));
    spec.set_train_path(AbsolutePath(spec.train_path(), spec_dir));
    spec.set_valid_path(AbsolutePath(spec.valid_path(), spec_dir));
  }
  TL_RETURN_IF_ERROR(ApplySubmitFlags(flags, cwd, spec));
  return spec;
}

absl::Status CheckSubmitHasInputs(const JobSpec& spec) {
  std::vector<std::string> missing;
  if (spec.model_path().empty()) missing.push_back("--model DIR");
  if (spec.train_path().empty()) missing.push_back("--train FILE");
  if (missing.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("missing ", absl::StrJoin(missing, " and "),
                                                 " (or a --spec FILE that sets ",
                                                 missing.size() == 1 ? "it" : "them", ")"));
}

}  // namespace tuneledger::client
