#include "server/core/job_spec_validator.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "worker/trainer/job_spec_defaults.h"

namespace tuneledger {
namespace {

namespace defaults = spec_defaults;

constexpr int kMaxNameLength = 128;
constexpr int kMaxRequestIdLength = 128;
constexpr int kMaxGpus = 64;
constexpr int kMaxAttemptsLimit = 100;
constexpr double kMaxThreshold = 10.0;

// Collects "field: problem" lines; the one place that formats them.
class Problems {
 public:
  void Add(absl::string_view field, absl::string_view problem) {
    lines_.push_back(absl::StrCat(field, ": ", problem));
  }
  absl::Status ToStatus() const {
    if (lines_.empty()) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrJoin(lines_, "; "));
  }

 private:
  std::vector<std::string> lines_;
};

void CheckIntRange(Problems& problems, absl::string_view field, int64_t value, int64_t min,
                   int64_t max) {
  if (value < min || value > max) {
    problems.Add(field, absl::StrCat("must be in [", min, ", ", max, "], got ", value));
  }
}

// For fields where 0 means "the default": only negative values and values past `max` are bad.
void CheckOptionalCount(Problems& problems, absl::string_view field, int64_t value, int64_t max) {
  if (value < 0 || value > max) {
    problems.Add(field, absl::StrCat("must be in [0, ", max, "] (0 = default), got ", value));
  }
}

// The defaults table holds std::string_view, which this Abseil's StrJoin does not format.
void AppendName(std::string* out, std::string_view name) { out->append(name); }

bool IsKnownTargetModule(const std::string& name) {
  return std::find(defaults::kAllTargetModules.begin(), defaults::kAllTargetModules.end(), name) !=
         defaults::kAllTargetModules.end();
}

void ValidateLora(const v1::LoraConfig& lora, Problems& problems) {
  if (lora.has_r()) CheckIntRange(problems, "spec.lora.r", lora.r(), 1, defaults::kLoraRMax);
  if (!std::isfinite(lora.alpha()) || lora.alpha() < 0) {
    problems.Add("spec.lora.alpha", absl::StrCat("must be > 0 (0 = default ", defaults::kLoraAlpha,
                                                 "), got ", lora.alpha()));
  }
  if (lora.has_dropout() && !(lora.dropout() >= 0 && lora.dropout() < 1)) {
    problems.Add("spec.lora.dropout", absl::StrCat("must be in [0, 1), got ", lora.dropout()));
  }
  for (int i = 0; i < lora.target_modules_size(); ++i) {
    const std::string& name = lora.target_modules(i);
    const std::string field = absl::StrCat("spec.lora.target_modules[", i, "]");
    if (!IsKnownTargetModule(name)) {
      problems.Add(field,
                   absl::StrCat("unknown module \"", name, "\" (known: ",
                                absl::StrJoin(defaults::kAllTargetModules, ", ", AppendName), ")"));
    } else if (std::find(lora.target_modules().begin(), lora.target_modules().begin() + i, name) !=
               lora.target_modules().begin() + i) {
      problems.Add(field, absl::StrCat("module \"", name, "\" is listed twice"));
    }
  }
}

void ValidateTraining(const v1::TrainingConfig& training, Problems& problems) {
  constexpr int kBig = 1'000'000'000;
  CheckOptionalCount(problems, "spec.training.epochs", training.epochs(), 10'000);
  CheckOptionalCount(problems, "spec.training.max_steps", training.max_steps(), kBig);
  if (training.epochs() > 0 && training.max_steps() > 0) {
    problems.Add("spec.training.max_steps",
                 absl::StrCat("must not be set together with spec.training.epochs (got epochs ",
                              training.epochs(), " and max_steps ", training.max_steps(), ")"));
  }
  CheckOptionalCount(problems, "spec.training.batch_size", training.batch_size(), 65'536);
  CheckOptionalCount(problems, "spec.training.grad_accum_steps", training.grad_accum_steps(),
                     65'536);
  const double lr = training.learning_rate();
  if (!std::isfinite(lr) || lr < 0) {
    problems.Add("spec.training.learning_rate", absl::StrCat("must be > 0, got ", lr));
  }
  CheckOptionalCount(problems, "spec.training.warmup_steps", training.warmup_steps(), kBig);
  if (training.max_steps() > 0 && training.warmup_steps() > training.max_steps()) {
    problems.Add("spec.training.warmup_steps",
                 absl::StrCat("must be <= spec.training.max_steps (", training.max_steps(),
                              "), got ", training.warmup_steps()));
  }
  if (!v1::TrainingConfig::LrSchedule_IsValid(training.lr_schedule())) {
    problems.Add("spec.training.lr_schedule",
                 absl::StrCat("unknown schedule value ", training.lr_schedule()));
  }
  CheckOptionalCount(problems, "spec.training.seq_len", training.seq_len(), defaults::kSeqLenMax);
  if (!v1::TrainingConfig::Precision_IsValid(training.precision())) {
    problems.Add("spec.training.precision",
                 absl::StrCat("unknown precision value ", training.precision()));
  }
  CheckOptionalCount(problems, "spec.training.checkpoint_every_steps",
                     training.checkpoint_every_steps(), kBig);
  CheckOptionalCount(problems, "spec.training.eval_every_steps", training.eval_every_steps(), kBig);
  if (training.has_weight_decay() &&
      !(std::isfinite(training.weight_decay()) && training.weight_decay() >= 0)) {
    problems.Add("spec.training.weight_decay",
                 absl::StrCat("must be >= 0, got ", training.weight_decay()));
  }
  if (training.has_max_grad_norm() &&
      !(std::isfinite(training.max_grad_norm()) && training.max_grad_norm() >= 0)) {
    problems.Add("spec.training.max_grad_norm",
                 absl::StrCat("must be >= 0 (0 = no clipping), got ", training.max_grad_norm()));
  }
  CheckOptionalCount(problems, "spec.training.sample_max_tokens", training.sample_max_tokens(),
                     65'536);
}

void ValidateBudget(const v1::Budget& budget, Problems& problems) {
  if (budget.has_usd() && !(std::isfinite(budget.usd()) && budget.usd() > 0)) {
    problems.Add("spec.budget.usd",
                 absl::StrCat("must be > 0 (leave it unset for no budget), got ", budget.usd()));
  }
  for (int i = 0; i < budget.thresholds_size(); ++i) {
    const double threshold = budget.thresholds(i);
    const std::string field = absl::StrCat("spec.budget.thresholds[", i, "]");
    if (!(threshold > 0 && threshold <= kMaxThreshold)) {
      problems.Add(field, absl::StrCat("must be in (0, ", kMaxThreshold, "], got ", threshold));
    } else if (i > 0 && !(threshold > budget.thresholds(i - 1))) {
      problems.Add(field, absl::StrCat("thresholds must be strictly increasing, got ", threshold,
                                       " after ", budget.thresholds(i - 1)));
    }
  }
  if (!v1::Budget::Policy_IsValid(budget.policy())) {
    problems.Add("spec.budget.policy", absl::StrCat("unknown policy value ", budget.policy()));
  }
}

void ValidateInheritedCosts(const v1::JobSpec& spec, Problems& problems) {
  for (int i = 0; i < spec.inherited_costs_size(); ++i) {
    const v1::InheritedCost& cost = spec.inherited_costs(i);
    const std::string prefix = absl::StrCat("spec.inherited_costs[", i, "]");
    if (!(std::isfinite(cost.usd()) && cost.usd() >= 0)) {
      problems.Add(absl::StrCat(prefix, ".usd"), absl::StrCat("must be >= 0, got ", cost.usd()));
    }
    if (!v1::InheritedCost::Kind_IsValid(cost.kind()) ||
        cost.kind() == v1::InheritedCost::KIND_UNSPECIFIED) {
      problems.Add(
          absl::StrCat(prefix, ".kind"),
          absl::StrCat("must be BASE_MODEL_PRETRAINING, DATA, LABOUR or OTHER, got ", cost.kind()));
    }
    if (cost.source().empty()) {
      problems.Add(absl::StrCat(prefix, ".source"),
                   "required: say where the number comes from (paper, invoice, estimate)");
    }
  }
}

}  // namespace

absl::Status ValidateJobSpec(const v1::JobSpec& spec) {
  Problems problems;
  if (spec.name().size() > kMaxNameLength) {
    problems.Add("spec.name", absl::StrCat("must be at most ", kMaxNameLength, " characters, got ",
                                           spec.name().size()));
  }
  if (spec.model_path().empty()) problems.Add("spec.model_path", "required");
  if (spec.train_path().empty()) problems.Add("spec.train_path", "required");
  ValidateLora(spec.lora(), problems);
  ValidateTraining(spec.training(), problems);
  ValidateBudget(spec.budget(), problems);
  CheckIntRange(problems, "spec.priority", spec.priority(), defaults::kPriorityMin,
                defaults::kPriorityMax);
  for (const auto& [key, value] : spec.labels()) {
    if (key.empty()) problems.Add("spec.labels", "keys must not be empty");
  }
  ValidateInheritedCosts(spec, problems);
  if (spec.client_request_id().size() > kMaxRequestIdLength) {
    problems.Add("spec.client_request_id",
                 absl::StrCat("must be at most ", kMaxRequestIdLength, " characters, got ",
                              spec.client_request_id().size()));
  }
  CheckOptionalCount(problems, "spec.gpus", spec.gpus(), kMaxGpus);
  CheckOptionalCount(problems, "spec.max_attempts", spec.max_attempts(), kMaxAttemptsLimit);
  return problems.ToStatus();
}

namespace {

namespace fs = std::filesystem;

bool IsReadableFile(const fs::path& path) {
  std::error_code error;
  if (!fs::is_regular_file(path, error)) return false;
  std::ifstream stream(path, std::ios::binary);
  return stream.good();
}

bool HasWeights(const fs::path& folder) {
  std::error_code error;
  if (IsReadableFile(folder / "model.safetensors.index.json")) return true;
  for (fs::directory_iterator it(folder, error), end; !error && it != end; it.increment(error)) {
    if (it->path().extension() == ".safetensors" && IsReadableFile(it->path())) return true;
  }
  return false;
}

void CheckModelFolder(const std::string& model_path, Problems& problems) {
  std::error_code error;
  if (!fs::is_directory(model_path, error)) {
    problems.Add("spec.model_path", absl::StrCat("no such folder: \"", model_path, "\""));
    return;
  }
  if (!IsReadableFile(fs::path(model_path) / "config.json")) {
    problems.Add("spec.model_path",
                 absl::StrCat("folder \"", model_path, "\" has no readable config.json"));
  }
  if (!HasWeights(model_path)) {
    problems.Add("spec.model_path",
                 absl::StrCat("folder \"", model_path,
                              "\" has no *.safetensors file or model.safetensors.index.json"));
  }
}

void CheckDataFile(absl::string_view field, const std::string& path, Problems& problems) {
  if (!IsReadableFile(path)) {
    problems.Add(field, absl::StrCat("not a readable file: \"", path, "\""));
  }
}

}  // namespace

absl::Status ValidateJobInputs(const v1::JobSpec& spec) {
  Problems problems;
  CheckModelFolder(spec.model_path(), problems);
  CheckDataFile("spec.train_path", spec.train_path(), problems);
  if (!spec.valid_path().empty()) CheckDataFile("spec.valid_path", spec.valid_path(), problems);
  return problems.ToStatus();
}

v1::JobSpec WithDefaults(v1::JobSpec spec) {
  v1::LoraConfig& lora = *spec.mutable_lora();
  if (!lora.has_r()) lora.set_r(defaults::kLoraR);
  if (lora.alpha() == 0) lora.set_alpha(defaults::kLoraAlpha);
  if (!lora.has_dropout()) lora.set_dropout(defaults::kLoraDropout);
  if (lora.target_modules().empty()) {
    for (std::string_view name : defaults::kTargetModules) {
      lora.add_target_modules(std::string(name));
    }
  }

  v1::TrainingConfig& training = *spec.mutable_training();
  if (training.epochs() == 0 && training.max_steps() == 0) training.set_epochs(defaults::kEpochs);
  if (training.batch_size() == 0) training.set_batch_size(defaults::kBatchSize);
  if (training.grad_accum_steps() == 0) training.set_grad_accum_steps(defaults::kGradAccumSteps);
  if (training.learning_rate() == 0) training.set_learning_rate(defaults::kLearningRate);
  if (training.lr_schedule() == v1::TrainingConfig::SCHEDULE_UNSPECIFIED) {
    training.set_lr_schedule(v1::TrainingConfig::COSINE);
  }
  if (training.seq_len() == 0) training.set_seq_len(defaults::kSeqLen);
  if (training.checkpoint_every_steps() == 0) {
    training.set_checkpoint_every_steps(defaults::kCheckpointEverySteps);
  }
  if (training.eval_every_steps() == 0) training.set_eval_every_steps(defaults::kEvalEverySteps);
  if (!training.has_weight_decay()) training.set_weight_decay(defaults::kWeightDecay);
  if (!training.has_max_grad_norm()) training.set_max_grad_norm(defaults::kMaxGradNorm);
  if (training.sample_max_tokens() == 0) {
    training.set_sample_max_tokens(defaults::kSampleMaxTokens);
  }

  v1::Budget& budget = *spec.mutable_budget();
  if (budget.has_usd()) {
    if (budget.thresholds().empty()) {
      for (double threshold : defaults::kBudgetThresholds) budget.add_thresholds(threshold);
    }
    if (budget.policy() == v1::Budget::POLICY_UNSPECIFIED) budget.set_policy(v1::Budget::CANCEL);
  }

  if (spec.gpus() == 0) spec.set_gpus(defaults::kGpus);
  if (spec.max_attempts() == 0) spec.set_max_attempts(defaults::kMaxAttempts);
  return spec;
}

}  // namespace tuneledger
