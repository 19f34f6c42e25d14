// The job spec's contract, written once: the defaults, limits and rules of a
// tuneledger.v1.JobSpec (jobs.proto), over plain values.
//
// Header-only, on the C++ standard library alone (and base/bounded_text.h and base/utf8.h, each on
// the standard library alone), so that both sides apply it: the server's validator
// (server/core/job_spec_validator.cc fills JobSpecValues from the proto) and the trainer's spec
// parser (worker/trainer/spec/job_spec.cc fills it from the spec's JSON). Both
// report the same problems with the same field paths, so a spec the server accepts is a spec
// the trainer accepts (tests/contract/job_spec_contract_test.cc generates specs across every
// field's edge values and checks exactly that).
//
// Field paths are the proto's field names under "spec." (the field of SubmitJobRequest):
// "spec.lora.r", "spec.training.seq_len", "spec.budget.thresholds[1]". Where 0 (or empty) means
// "the default", the default is the constant below; fields with presence in the proto
// (`optional`) are std::optional here.
//
// Limits bound what a tenant can make the server store and a worker run: text counts Unicode
// characters (code points) and says so, except where a limit says bytes. One limit is the
// server's alone: kSpecMaxBytes on the serialized proto, which also bounds unknown fields (proto3
// keeps them; the trainer never sees them). A spec within every field limit is always under it
// (tests/server/job_spec_validator_test.cc builds the largest such spec).
//
// Thread safety: constants and pure functions.
#ifndef TUNELEDGER_PROTO_TUNELEDGER_V1_JOB_SPEC_CONTRACT_H_
#define TUNELEDGER_PROTO_TUNELEDGER_V1_JOB_SPEC_CONTRACT_H_

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/bounded_text.h"
#include "base/utf8.h"

namespace tuneledger::spec {

// ---- Defaults (applied by ApplyDefaults) ----
inline constexpr int kLoraR = 16;
inline constexpr double kLoraAlpha = 32.0;
inline constexpr double kLoraDropout = 0.1;
inline constexpr std::array<std::string_view, 2> kTargetModules = {"q_proj", "v_proj"};
inline constexpr int kEpochs = 1;  // when neither epochs nor max_steps is set
inline constexpr int kBatchSize = 8;
inline constexpr int kGradAccumSteps = 1;
inline constexpr double kLearningRate = 2e-4;
inline constexpr int kSeqLen = 256;
inline constexpr int kCheckpointEverySteps = 50;
inline constexpr int kEvalEverySteps = 50;
inline constexpr double kWeightDecay = 0.0;
inline constexpr double kMaxGradNorm = 1.0;
inline constexpr int kSampleMaxTokens = 64;
// Fractions of budget.usd at which an event is recorded.
inline constexpr std::array<double, 3> kBudgetThresholds = {0.5, 0.8, 1.0};
inline constexpr int kGpus = 1;
inline constexpr int kMaxAttempts = 3;

// ---- Limits ----
inline constexpr int kNameMaxChars = 128;  // Unicode characters (code points)
inline constexpr int kClientRequestIdMaxChars = 128;
inline constexpr int kPathMaxBytes = 4096;  // model_path, train_path, valid_path: Linux's PATH_MAX
inline constexpr int kLabelsMax = 32;
inline constexpr int kLabelKeyMaxChars = 64;
inline constexpr int kLabelValueMaxChars = 256;
inline constexpr int kInheritedCostsMax = 16;
inline constexpr int kInheritedCostSourceMaxChars = 256;
inline constexpr int kInheritedCostDescriptionMaxChars = 1024;
inline constexpr int kBudgetThresholdsMax = 16;
// In bytes: a token covers at least one byte, so this bounds the prompt's tokens too, and with
// them the sequence the trainer's sample generation re-runs at every new token. The prompt's
// tokens are known only to the trainer's tokenizer; the contract keeps sample_max_tokens inside
// the training context (CheckSample).
inline constexpr int kSamplePromptMaxBytes = 4096;
// The server's cap on the serialized JobSpec, well under gRPC's default 4 MiB message limit that
// a submit, a lease (worker.proto) and a ListJobs page must each fit.
inline constexpr int64_t kSpecMaxBytes = 256 * 1024;
// An error lists at most this many problems, then counts the rest, so that it stays small.
inline constexpr int kProblemsShownMax = 16;
inline constexpr int kLoraRMax = 1024;
inline constexpr int kEpochsMax = 10'000;
inline constexpr int kStepsMax = 1'000'000'000;  // max_steps, warmup, checkpoint and eval periods
inline constexpr int kBatchSizeMax = 65'536;
inline constexpr int kGradAccumStepsMax = 65'536;
inline constexpr int kSeqLenMin = 2;  // one input token and one target
inline constexpr int kSeqLenMax = 131'072;
inline constexpr int kSampleMaxTokensMax = 65'536;
inline constexpr double kThresholdMax = 10.0;
inline constexpr int kPriorityMin = -1000;
inline constexpr int kPriorityMax = 1000;
inline constexpr int kGpusMax = 64;
inline constexpr int kMaxAttemptsMax = 100;
inline constexpr int kPatienceEvalsMax = 10'000;
inline constexpr double kDivergenceFactorMax = 1e6;

// Every projection LoRA may wrap, with Hugging Face Llama names.
inline constexpr std::array<std::string_view, 7> kAllTargetModules = {
    "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};

// The proto's enum value names, indexed by number (jobs.proto; checked against the generated
// descriptors in tests/contract/job_spec_contract_test.cc).
inline constexpr std::array<std::string_view, 4> kLrScheduleNames = {
    "SCHEDULE_UNSPECIFIED", "COSINE", "LINEAR", "CONSTANT"};
inline constexpr std::array<std::string_view, 4> kPrecisionNames = {"PRECISION_UNSPECIFIED", "FP32",
                                                                    "BF16", "FP16"};
inline constexpr std::array<std::string_view, 3> kBudgetPolicyNames = {"POLICY_UNSPECIFIED",
                                                                       "CANCEL", "ALERT_ONLY"};
inline constexpr std::array<std::string_view, 3> kDataSelectionMethodNames = {"METHOD_UNSPECIFIED",
                                                                              "ENTROPY", "LOSS"};
// LoraConfig.QuantizeBase: 0 and NONE both keep the base weights unquantized.
inline constexpr std::array<std::string_view, 5> kQuantizeBaseNames = {
    "QUANTIZE_BASE_UNSPECIFIED", "NONE", "NF4", "INT8", "NF4_DQ"};
inline constexpr std::array<std::string_view, 5> kInheritedCostKindNames = {
    "KIND_UNSPECIFIED", "BASE_MODEL_PRETRAINING", "DATA", "LABOUR", "OTHER"};
inline constexpr int kLrScheduleCosine = 1;
inline constexpr int kBudgetPolicyCancel = 1;

// A JobSpec as plain values. Enums are their proto numbers (unknown numbers are a problem).
struct JobSpecValues {
  struct Lora {
    std::optional<int64_t> r;
    double alpha = 0;
    std::optional<double> dropout;
    std::vector<std::string> target_modules;
    int64_t quantize_base = 0;  // kQuantizeBaseNames; 0 = not quantized
  };
  struct Training {
    int64_t epochs = 0;
    int64_t max_steps = 0;
    int64_t batch_size = 0;
    int64_t grad_accum_steps = 0;
    double learning_rate = 0;
    int64_t warmup_steps = 0;
    int64_t lr_schedule = 0;
    int64_t seq_len = 0;
    int64_t seed = 0;
    int64_t precision = 0;
    bool gradient_checkpointing = false;
    int64_t checkpoint_every_steps = 0;
    int64_t eval_every_steps = 0;
    std::optional<double> weight_decay;
    std::optional<double> max_grad_norm;
    bool save_merged_model = false;
    std::string sample_prompt;
    int64_t sample_max_tokens = 0;
    struct EarlyStop {
      int64_t patience_evals = 0;  // 0 = never stop early
      double min_delta = 0;
      double divergence_factor = 0;  // 0 = off
    } early_stop;
    struct DataSelection {
      int64_t method = 0;  // 0 = no selection
      double keep_fraction = 0;
    } data_selection;
  };
  struct Budget {
    std::optional<double> usd;
    std::vector<double> thresholds;
    int64_t policy = 0;
  };
  struct InheritedCost {
    int64_t kind = 0;
    double usd = 0;
    std::string source;
    std::string description;
  };

  std::string name;
  std::string model_path;
  std::string train_path;
  std::string valid_path;
  Lora lora;
  Training training;
  Budget budget;
  int64_t priority = 0;
  std::vector<std::pair<std::string, std::string>> labels;
  std::vector<InheritedCost> inherited_costs;
  std::string client_request_id;
  int64_t gpus = 0;
  int64_t max_attempts = 0;
};

// One broken rule: the field's path and what is wrong with it.
struct Problem {
  std::string field;
  std::string message;
};

namespace contract_internal {

// Integers as integers; other numbers as the shortest of %g's forms ("-0.1", "1e+30", "nan").
inline std::string Number(double value) {
  if (std::isfinite(value) && value == std::floor(value) && std::fabs(value) < 1e15) {
    return std::to_string(static_cast<int64_t>(value));
  }
  char text[32];
  std::snprintf(text, sizeof(text), "%g", value);
  return text;
}

inline std::string Number(int64_t value) { return std::to_string(value); }

class Checker {
 public:
  void Add(std::string field, std::string message) {
    problems_.push_back({std::move(field), std::move(message)});
  }
  void IntRange(const std::string& field, int64_t value, int64_t min, int64_t max) {
    if (value < min || value > max) {
      Add(field, "must be in [" + Number(min) + ", " + Number(max) + "], got " + Number(value));
    }
  }
  // Fields where 0 means "the default": negative values and values past `max` are bad.
  void OptionalCount(const std::string& field, int64_t value, int64_t max) {
    if (value < 0 || value > max) {
      Add(field, "must be in [0, " + Number(max) + "] (0 = default), got " + Number(value));
    }
  }
  template <size_t N>
  void Enum(const std::string& field, int64_t value, const std::array<std::string_view, N>& names,
            const char* what) {
    if (value < 0 || value >= static_cast<int64_t>(N)) {
      Add(field, std::string("unknown ") + what + " value " + Number(value));
    }
  }
  void Text(const std::string& field, const std::string& value, int64_t max_chars) {
    if (std::optional<std::string> problem = TextProblem(value, max_chars)) Add(field, *problem);
  }
  // What is wrong with `value` as text of at most `max_chars` characters, if anything.
  static std::optional<std::string> TextProblem(const std::string& value, int64_t max_chars) {
    const std::optional<int64_t> length = Utf8Length(value);
    if (!length) return "must be valid UTF-8";
    if (*length > max_chars) {
      return "must be at most " + Number(max_chars) + " characters, got " + Number(*length);
    }
    return std::nullopt;
  }
  // Text whose limit is in bytes.
  void Bytes(const std::string& field, const std::string& value, int64_t max_bytes) {
    if (!Utf8Length(value)) {
      Add(field, "must be valid UTF-8");
    } else if (static_cast<int64_t>(value.size()) > max_bytes) {
      Add(field, "must be at most " + Number(max_bytes) + " bytes, got " +
                     Number(static_cast<int64_t>(value.size())));
    }
  }
  // A list or map of at most `max` entries.
  void Count(const std::string& field, size_t count, int64_t max, const char* what) {
    if (static_cast<int64_t>(count) > max) {
      Add(field, "must have at most " + Number(max) + " " + what + ", got " +
                     Number(static_cast<int64_t>(count)));
    }
  }
  std::vector<Problem> Take() { return std::move(problems_); }

 private:
  std::vector<Problem> problems_;
};

// A value quoted into an error message, cut short: an error carries no large input back.
inline std::string Quoted(std::string_view value) { return "\"" + BoundedText(value, 64) + "\""; }

inline bool IsKnownTargetModule(std::string_view name) {
  return std::find(kAllTargetModules.begin(), kAllTargetModules.end(), name) !=
         kAllTargetModules.end();
}

inline std::string KnownTargetModules() {
  std::string known;
  for (std::string_view name : kAllTargetModules) {
    known += (known.empty() ? "" : ", ") + std::string(name);
  }
  return known;
}

inline void CheckLora(const JobSpecValues::Lora& lora, Checker& check) {
  if (lora.r) check.IntRange("spec.lora.r", *lora.r, 1, kLoraRMax);
  if (!std::isfinite(lora.alpha) || lora.alpha < 0) {
    check.Add("spec.lora.alpha",
              "must be > 0 (0 = default " + Number(kLoraAlpha) + "), got " + Number(lora.alpha));
  }
  if (lora.dropout && !(*lora.dropout >= 0 && *lora.dropout < 1)) {
    check.Add("spec.lora.dropout", "must be in [0, 1), got " + Number(*lora.dropout));
  }
  for (size_t i = 0; i < lora.target_modules.size(); ++i) {
    const std::string& name = lora.target_modules[i];
    const std::string field = "spec.lora.target_modules[" + std::to_string(i) + "]";
    if (!IsKnownTargetModule(name)) {
      check.Add(field, "unknown module " + Quoted(name) + " (known: " + KnownTargetModules() + ")");
    } else if (std::find(lora.target_modules.begin(), lora.target_modules.begin() + i, name) !=
               lora.target_modules.begin() + i) {
      check.Add(field, "module " + Quoted(name) + " is listed twice");
    }
  }
  // Quantizing the frozen base is a LoRA job's choice, and every job is one (a spec cannot ask
  // for full fine-tuning), so no other field rules it out: any known value goes.
  check.Enum("spec.lora.quantize_base", lora.quantize_base, kQuantizeBaseNames, "quantize_base");
}

// The sample generation (worker/trainer/recipe/train_main.cc's PrintSample) runs in the training
// context: a BOS token, the prompt's tokens and sample_max_tokens new ones. The prompt is bounded
// in bytes (its tokens are the trainer's tokenizer's to count); the new tokens must leave room in
// seq_len for the BOS and at least one prompt token. Without a prompt there is no sample.
inline void CheckSample(const JobSpecValues::Training& training, Checker& check) {
  check.Bytes("spec.training.sample_prompt", training.sample_prompt, kSamplePromptMaxBytes);
  if (training.sample_prompt.empty()) return;
  const int64_t seq_len = training.seq_len == 0 ? kSeqLen : training.seq_len;
  const int64_t new_tokens =
      training.sample_max_tokens == 0 ? kSampleMaxTokens : training.sample_max_tokens;
  const int64_t room = seq_len - 2;
  const bool in_range = seq_len >= kSeqLenMin && seq_len <= kSeqLenMax && new_tokens > 0 &&
                        new_tokens <= kSampleMaxTokensMax;  // else reported above
  if (in_range && new_tokens > room) {
    check.Add("spec.training.sample_max_tokens",
              "with a spec.training.sample_prompt, must leave room for a BOS and a prompt token "
              "in spec.training.seq_len (" +
                  Number(seq_len) + "): at most " + Number(room) + ", got " + Number(new_tokens));
  }
}

inline void CheckTraining(const JobSpecValues::Training& training, Checker& check) {
  check.OptionalCount("spec.training.epochs", training.epochs, kEpochsMax);
  check.OptionalCount("spec.training.max_steps", training.max_steps, kStepsMax);
  if (training.epochs > 0 && training.max_steps > 0) {
    check.Add("spec.training.max_steps",
              "must not be set together with spec.training.epochs (got epochs " +
                  Number(training.epochs) + " and max_steps " + Number(training.max_steps) + ")");
  }
  check.OptionalCount("spec.training.batch_size", training.batch_size, kBatchSizeMax);
  check.OptionalCount("spec.training.grad_accum_steps", training.grad_accum_steps,
                      kGradAccumStepsMax);
  if (!std::isfinite(training.learning_rate) || training.learning_rate < 0) {
    check.Add("spec.training.learning_rate", "must be > 0, got " + Number(training.learning_rate));
  }
  check.OptionalCount("spec.training.warmup_steps", training.warmup_steps, kStepsMax);
  if (training.max_steps > 0 && training.warmup_steps > training.max_steps) {
    check.Add("spec.training.warmup_steps", "must be <= spec.training.max_steps (" +
                                                Number(training.max_steps) + "), got " +
                                                Number(training.warmup_steps));
  }
  check.Enum("spec.training.lr_schedule", training.lr_schedule, kLrScheduleNames, "schedule");
  if (training.seq_len != 0 && (training.seq_len < kSeqLenMin || training.seq_len > kSeqLenMax)) {
    check.Add("spec.training.seq_len", "must be in [" + Number(int64_t{kSeqLenMin}) + ", " +
                                           Number(int64_t{kSeqLenMax}) + "] (0 = default " +
                                           Number(int64_t{kSeqLen}) + "), got " +
                                           Number(training.seq_len));
  }
  check.Enum("spec.training.precision", training.precision, kPrecisionNames, "precision");
  check.OptionalCount("spec.training.checkpoint_every_steps", training.checkpoint_every_steps,
                      kStepsMax);
  check.OptionalCount("spec.training.eval_every_steps", training.eval_every_steps, kStepsMax);
  if (training.weight_decay &&
      !(std::isfinite(*training.weight_decay) && *training.weight_decay >= 0)) {
    check.Add("spec.training.weight_decay", "must be >= 0, got " + Number(*training.weight_decay));
  }
  if (training.max_grad_norm &&
      !(std::isfinite(*training.max_grad_norm) && *training.max_grad_norm >= 0)) {
    check.Add("spec.training.max_grad_norm",
              "must be >= 0 (0 = no clipping), got " + Number(*training.max_grad_norm));
  }
  check.OptionalCount("spec.training.sample_max_tokens", training.sample_max_tokens,
                      kSampleMaxTokensMax);
  CheckSample(training, check);
}

// Early stopping judges eval loss, so it needs validation data.
inline void CheckEarlyStop(const JobSpecValues::Training::EarlyStop& early_stop,
                           const std::string& valid_path, Checker& check) {
  check.IntRange("spec.training.early_stop.patience_evals", early_stop.patience_evals, 0,
                 kPatienceEvalsMax);
  if (early_stop.patience_evals > 0 && valid_path.empty()) {
    check.Add("spec.training.early_stop.patience_evals",
              "needs spec.valid_path: early stopping judges the eval loss, got " +
                  Number(early_stop.patience_evals) + " without validation data");
  }
  if (!(std::isfinite(early_stop.min_delta) && early_stop.min_delta >= 0)) {
    check.Add("spec.training.early_stop.min_delta",
              "must be >= 0 (nats), got " + Number(early_stop.min_delta));
  }
  const double factor = early_stop.divergence_factor;
  if (factor != 0 && !(factor > 1 && factor <= kDivergenceFactorMax)) {
    check.Add(
        "spec.training.early_stop.divergence_factor",
        "must be in (1, " + Number(kDivergenceFactorMax) + "] (0 = off), got " + Number(factor));
  }
}

// A method needs a fraction to keep, and a fraction needs a method.
inline void CheckDataSelection(const JobSpecValues::Training::DataSelection& selection,
                               Checker& check) {
  check.Enum("spec.training.data_selection.method", selection.method, kDataSelectionMethodNames,
             "method");
  const double fraction = selection.keep_fraction;
  if (selection.method == 0) {
    if (fraction != 0) {
      check.Add("spec.training.data_selection.keep_fraction",
                "needs spec.training.data_selection.method (ENTROPY or LOSS), got " +
                    Number(fraction) + " without one");
    }
  } else if (!(fraction > 0 && fraction <= 1)) {
    check.Add("spec.training.data_selection.keep_fraction",
              "must be in (0, 1] with a selection method, got " + Number(fraction));
  }
}

inline void CheckBudget(const JobSpecValues::Budget& budget, Checker& check) {
  if (budget.usd && !(std::isfinite(*budget.usd) && *budget.usd > 0)) {
    check.Add("spec.budget.usd",
              "must be > 0 (leave it unset for no budget), got " + Number(*budget.usd));
  }
  check.Count("spec.budget.thresholds", budget.thresholds.size(), kBudgetThresholdsMax,
              "thresholds");
  for (size_t i = 0; i < budget.thresholds.size(); ++i) {
    const double threshold = budget.thresholds[i];
    const std::string field = "spec.budget.thresholds[" + std::to_string(i) + "]";
    if (!(threshold > 0 && threshold <= kThresholdMax)) {
      check.Add(field, "must be in (0, " + Number(kThresholdMax) + "], got " + Number(threshold));
    } else if (i > 0 && !(threshold > budget.thresholds[i - 1])) {
      check.Add(field, "thresholds must be strictly increasing, got " + Number(threshold) +
                           " after " + Number(budget.thresholds[i - 1]));
    }
  }
  check.Enum("spec.budget.policy", budget.policy, kBudgetPolicyNames, "policy");
}

inline void CheckInheritedCosts(const std::vector<JobSpecValues::InheritedCost>& costs,
                                Checker& check) {
  check.Count("spec.inherited_costs", costs.size(), kInheritedCostsMax, "entries");
  for (size_t i = 0; i < costs.size(); ++i) {
    const JobSpecValues::InheritedCost& cost = costs[i];
    const std::string prefix = "spec.inherited_costs[" + std::to_string(i) + "]";
    if (!(std::isfinite(cost.usd) && cost.usd >= 0)) {
      check.Add(prefix + ".usd", "must be >= 0, got " + Number(cost.usd));
    }
    if (cost.kind <= 0 || cost.kind >= static_cast<int64_t>(kInheritedCostKindNames.size())) {
      check.Add(prefix + ".kind",
                "must be BASE_MODEL_PRETRAINING, DATA, LABOUR or OTHER, got " + Number(cost.kind));
    }
    if (cost.source.empty()) {
      check.Add(prefix + ".source",
                "required: say where the number comes from (paper, invoice, estimate)");
    }
    check.Text(prefix + ".source", cost.source, kInheritedCostSourceMaxChars);
    check.Text(prefix + ".description", cost.description, kInheritedCostDescriptionMaxChars);
  }
}

// Labels in key order. A key's problems name the key (cut short); a value's name its label.
inline void CheckLabels(const std::vector<std::pair<std::string, std::string>>& labels,
                        Checker& check) {
  check.Count("spec.labels", labels.size(), kLabelsMax, "labels");
  for (const auto& [key, value] : labels) {
    if (key.empty()) {
      check.Add("spec.labels", "keys must not be empty");
    } else if (std::optional<std::string> problem = Checker::TextProblem(key, kLabelKeyMaxChars)) {
      check.Add("spec.labels", "key " + Quoted(key) + " " + *problem);
    }
    check.Text("spec.labels[" + Quoted(key) + "]", value, kLabelValueMaxChars);
  }
}

}  // namespace contract_internal

// Every rule the spec breaks, in field order; empty when it is valid. Pure: no filesystem
// (paths are checked by the server's ValidateJobInputs and by the trainer when it reads them).
inline std::vector<Problem> Validate(const JobSpecValues& spec) {
  contract_internal::Checker check;
  check.Text("spec.name", spec.name, kNameMaxChars);
  if (spec.model_path.empty()) check.Add("spec.model_path", "required");
  check.Bytes("spec.model_path", spec.model_path, kPathMaxBytes);
  if (spec.train_path.empty()) check.Add("spec.train_path", "required");
  check.Bytes("spec.train_path", spec.train_path, kPathMaxBytes);
  check.Bytes("spec.valid_path", spec.valid_path, kPathMaxBytes);
  contract_internal::CheckLora(spec.lora, check);
  contract_internal::CheckTraining(spec.training, check);
  contract_internal::CheckEarlyStop(spec.training.early_stop, spec.valid_path, check);
  contract_internal::CheckDataSelection(spec.training.data_selection, check);
  contract_internal::CheckBudget(spec.budget, check);
  check.IntRange("spec.priority", spec.priority, kPriorityMin, kPriorityMax);
  contract_internal::CheckLabels(spec.labels, check);
  contract_internal::CheckInheritedCosts(spec.inherited_costs, check);
  check.Text("spec.client_request_id", spec.client_request_id, kClientRequestIdMaxChars);
  check.OptionalCount("spec.gpus", spec.gpus, kGpusMax);
  check.OptionalCount("spec.max_attempts", spec.max_attempts, kMaxAttemptsMax);
  return check.Take();
}

// "field: message; field: message", the one way problems are spelled in errors; past
// kProblemsShownMax problems, "; and N more problems".
inline std::string JoinProblems(const std::vector<Problem>& problems) {
  const size_t shown = std::min(problems.size(), static_cast<size_t>(kProblemsShownMax));
  std::string text;
  for (size_t i = 0; i < shown; ++i) {
    text += (text.empty() ? "" : "; ") + problems[i].field + ": " + problems[i].message;
  }
  if (problems.size() > shown) {
    text += "; and " + std::to_string(problems.size() - shown) + " more problems";
  }
  return text;
}

// Sets every field that means "the default" to that default, so that what is stored, leased
// and run is the same spec. Budget thresholds and policy are filled only when a budget is set.
inline void ApplyDefaults(JobSpecValues& spec) {
  JobSpecValues::Lora& lora = spec.lora;
  if (!lora.r) lora.r = kLoraR;
  if (lora.alpha == 0) lora.alpha = kLoraAlpha;
  if (!lora.dropout) lora.dropout = kLoraDropout;
  if (lora.target_modules.empty()) {
    lora.target_modules.assign(kTargetModules.begin(), kTargetModules.end());
  }
  JobSpecValues::Training& training = spec.training;
  if (training.epochs == 0 && training.max_steps == 0) training.epochs = kEpochs;
  if (training.batch_size == 0) training.batch_size = kBatchSize;
  if (training.grad_accum_steps == 0) training.grad_accum_steps = kGradAccumSteps;
  if (training.learning_rate == 0) training.learning_rate = kLearningRate;
  if (training.lr_schedule == 0) training.lr_schedule = kLrScheduleCosine;
  if (training.seq_len == 0) training.seq_len = kSeqLen;
  if (training.checkpoint_every_steps == 0) training.checkpoint_every_steps = kCheckpointEverySteps;
  if (training.eval_every_steps == 0) training.eval_every_steps = kEvalEverySteps;
  if (!training.weight_decay) training.weight_decay = kWeightDecay;
  if (!training.max_grad_norm) training.max_grad_norm = kMaxGradNorm;
  if (training.sample_max_tokens == 0) training.sample_max_tokens = kSampleMaxTokens;
  if (spec.budget.usd) {
    if (spec.budget.thresholds.empty()) {
      spec.budget.thresholds.assign(kBudgetThresholds.begin(), kBudgetThresholds.end());
    }
    if (spec.budget.policy == 0) spec.budget.policy = kBudgetPolicyCancel;
  }
  if (spec.gpus == 0) spec.gpus = kGpus;
  if (spec.max_attempts == 0) spec.max_attempts = kMaxAttempts;
}

// How many of `total` training examples training.data_selection keeps: ceil(keep_fraction x
// total), at most total. The product is rounded to 1e-9 first, so that 0.7 x 10
// (7.000000000000001 in binary) keeps 7, not 8. The trainer selects that many; the server's
// estimate counts on it.
inline int64_t KeptExampleCount(int64_t total, double keep_fraction) {
  const double wanted = std::round(keep_fraction * static_cast<double>(total) * 1e9) / 1e9;
  return std::min<int64_t>(total, static_cast<int64_t>(std::ceil(wanted)));
}

}  // namespace tuneledger::spec

#endif  // TUNELEDGER_PROTO_TUNELEDGER_V1_JOB_SPEC_CONTRACT_H_
