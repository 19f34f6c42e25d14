#include "server/core/job_spec_validator.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "base/status_macros.h"
#include "tuneledger/v1/job_spec_contract.h"

namespace tuneledger {
namespace {

// The proto <-> contract mapping: every JobSpec field, both ways, in one place.
spec::JobSpecValues ToValues(const v1::JobSpec& proto) {
  spec::JobSpecValues values;
  values.name = proto.name();
  values.model_path = proto.model_path();
  values.train_path = proto.train_path();
  values.valid_path = proto.valid_path();

  const v1::LoraConfig& lora = proto.lora();
  if (lora.has_r()) values.lora.r = lora.r();
  values.lora.alpha = lora.alpha();
  if (lora.has_dropout()) values.lora.dropout = lora.dropout();
  values.lora.target_modules.assign(lora.target_modules().begin(), lora.target_modules().end());
  values.lora.quantize_base = lora.quantize_base();

  const v1::TrainingConfig& training = proto.training();
  spec::JobSpecValues::Training& t = values.training;
  t.epochs = training.epochs();
  t.max_steps = training.max_steps();
  t.batch_size = training.batch_size();
  t.grad_accum_steps = training.grad_accum_steps();
  t.learning_rate = training.learning_rate();
  t.warmup_steps = training.warmup_steps();
  t.lr_schedule = training.lr_schedule();
  t.seq_len = training.seq_len();
  t.seed = training.seed();
  t.precision = training.precision();
  t.gradient_checkpointing = training.gradient_checkpointing();
  t.checkpoint_every_steps = training.checkpoint_every_steps();
  t.eval_every_steps = training.eval_every_steps();
  if (training.has_weight_decay()) t.weight_decay = training.weight_decay();
  if (training.has_max_grad_norm()) t.max_grad_norm = training.max_grad_norm();
  t.save_merged_model = training.save_merged_model();
  t.sample_prompt = training.sample_prompt();
  t.sample_max_tokens = training.sample_max_tokens();
  t.early_stop.patience_evals = training.early_stop().patience_evals();
  t.early_stop.min_delta = training.early_stop().min_delta();
  t.early_stop.divergence_factor = training.early_stop().divergence_factor();
  t.data_selection.method = training.data_selection().method();
  t.data_selection.keep_fraction = training.data_selection().keep_fraction();

  const v1::Budget& budget = proto.budget();
  if (budget.has_usd()) values.budget.usd = budget.usd();
  values.budget.thresholds.assign(budget.thresholds().begin(), budget.thresholds().end());
  values.budget.policy = budget.policy();

  values.priority = proto.priority();
  // Sorted by key: a proto map has no order, and error messages should not wander.
  values.labels.assign(proto.labels().begin(), proto.labels().end());
  std::sort(values.labels.begin(), values.labels.end());
  for (const v1::InheritedCost& cost : proto.inherited_costs()) {
    values.inherited_costs.push_back({cost.kind(), cost.usd(), cost.source(), cost.description()});
  }
  values.client_request_id = proto.client_request_id();
  values.gpus = proto.gpus();
  values.max_attempts = proto.max_attempts();
  return values;
}

// Writes back the fields ApplyDefaults() fills; the others are the proto's already.
void CopyDefaultedFields(const spec::JobSpecValues& values, v1::JobSpec& proto) {
  v1::LoraConfig& lora = *proto.mutable_lora();
  lora.set_r(static_cast<int32_t>(*values.lora.r));
  lora.set_alpha(values.lora.alpha);
  lora.set_dropout(*values.lora.dropout);
  lora.mutable_target_modules()->Assign(values.lora.target_modules.begin(),
                                        values.lora.target_modules.end());

  const spec::JobSpecValues::Training& t = values.training;
  v1::TrainingConfig& training = *proto.mutable_training();
  training.set_epochs(static_cast<int32_t>(t.epochs));
  training.set_batch_size(static_cast<int32_t>(t.batch_size));
  training.set_grad_accum_steps(static_cast<int32_t>(t.grad_accum_steps));
  training.set_learning_rate(t.learning_rate);
  training.set_lr_schedule(static_cast<v1::TrainingConfig::LrSchedule>(t.lr_schedule));
  training.set_seq_len(static_cast<int32_t>(t.seq_len));
  training.set_checkpoint_every_steps(static_cast<int32_t>(t.checkpoint_every_steps));
  training.set_eval_every_steps(static_cast<int32_t>(t.eval_every_steps));
  training.set_weight_decay(*t.weight_decay);
  training.set_max_grad_norm(*t.max_grad_norm);
  training.set_sample_max_tokens(static_cast<int32_t>(t.sample_max_tokens));

  if (values.budget.usd) {
    v1::Budget& budget = *proto.mutable_budget();
    budget.mutable_thresholds()->Assign(values.budget.thresholds.begin(),
                                        values.budget.thresholds.end());
    budget.set_policy(static_cast<v1::Budget::Policy>(values.budget.policy));
  }
  proto.set_gpus(static_cast<int32_t>(values.gpus));
  proto.set_max_attempts(static_cast<int32_t>(values.max_attempts));
}

}  // namespace

absl::Status ValidateJobSpec(const v1::JobSpec& spec) {
  std::vector<spec::Problem> problems = spec::Validate(ToValues(spec));
  const size_t bytes = spec.ByteSizeLong();
  if (bytes > static_cast<size_t>(spec::kSpecMaxBytes)) {
    problems.push_back(
        {"spec", absl::StrCat("must be at most ", spec::kSpecMaxBytes, " bytes as protobuf, got ",
                              bytes, " (unknown fields count too)")});
  }
  if (problems.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(spec::JoinProblems(problems));
}

namespace {

namespace fs = std::filesystem;

// Collects "field: problem" lines of the input checks.
class Problems {
 public:
  void Add(absl::string_view field, absl::string_view problem) {
    lines_.push_back(absl::StrCat(field, ": ", problem));
  }
  void AddLines(const std::vector<std::string>& lines) {
    lines_.insert(lines_.end(), lines.begin(), lines.end());
  }
  const std::vector<std::string>& lines() const { return lines_; }
  absl::Status ToStatus() const {
    if (lines_.empty()) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrJoin(lines_, "; "));
  }

 private:
  std::vector<std::string> lines_;
};

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

void AddUnreadable(absl::string_view field, const std::string& path, Problems& problems) {
  problems.Add(field, absl::StrCat("not a readable file: \"", path, "\""));
}

void CheckDataFile(absl::string_view field, const std::string& path, Problems& problems) {
  if (!IsReadableFile(path)) AddUnreadable(field, path, problems);
}

// CheckDataFile through the cache; `stamp` empty: the file cannot be stat'ed, so not readable.
void CheckDataFile(absl::string_view field, const std::string& path, const std::string& stamp,
                   InputCheckCache& cache, Problems& problems) {
  const bool readable = !stamp.empty() && *cache.data_files.GetOrRead(path, stamp, [&] {
    return std::make_shared<const bool>(IsReadableFile(path));
  });
  if (!readable) AddUnreadable(field, path, problems);
}

}  // namespace

absl::StatusOr<v1::JobSpec> ConfineJobPaths(const v1::JobSpec& spec, const DataRoots& roots,
                                            const std::string& tenant) {
  if (roots.empty()) {
    return absl::FailedPreconditionError(
        "this server has no data roots (--data-root): it accepts no job that names files");
  }
  v1::JobSpec confined = spec;
  Problems problems;
  auto confine = [&](absl::string_view field, std::string* path) {
    if (path->empty()) return;
    const std::optional<std::string> resolved = roots.Resolve(tenant, *path);
    if (!resolved) {
      // The same words whether or not the path exists: nothing about files outside the roots.
      problems.Add(field, absl::StrCat("must be inside one of the data roots of tenant \"", tenant,
                                       "\" (the server's --data-root; relative paths are relative "
                                       "to a root)"));
      return;
    }
    *path = *resolved;
  };
  confine("spec.model_path", confined.mutable_model_path());
  confine("spec.train_path", confined.mutable_train_path());
  confine("spec.valid_path", confined.mutable_valid_path());
  TL_RETURN_IF_ERROR(problems.ToStatus());
  return confined;
}

absl::Status ValidateJobInputs(const v1::JobSpec& spec) {
  Problems problems;
  CheckModelFolder(spec.model_path(), problems);
  CheckDataFile("spec.train_path", spec.train_path(), problems);
  if (!spec.valid_path().empty()) CheckDataFile("spec.valid_path", spec.valid_path(), problems);
  return problems.ToStatus();
}

InputStamps TakeInputStamps(const v1::JobSpec& spec) {
  InputStamps stamps;
  if (!spec.model_path().empty()) stamps.model = FolderStamp(spec.model_path());
  if (!spec.train_path().empty()) stamps.train = FileStamp(spec.train_path());
  if (!spec.valid_path().empty()) stamps.valid = FileStamp(spec.valid_path());
  return stamps;
}

absl::Status ValidateJobInputs(const v1::JobSpec& spec, const InputStamps& stamps,
                               InputCheckCache& cache) {
  Problems problems;
  if (stamps.model.empty()) {
    CheckModelFolder(spec.model_path(), problems);  // not a folder that lists: nothing to keep
  } else {
    problems.AddLines(*cache.model_folders.GetOrRead(spec.model_path(), stamps.model, [&] {
      Problems folder;
      CheckModelFolder(spec.model_path(), folder);
      return std::make_shared<const std::vector<std::string>>(folder.lines());
    }));
  }
  CheckDataFile("spec.train_path", spec.train_path(), stamps.train, cache, problems);
  if (!spec.valid_path().empty()) {
    CheckDataFile("spec.valid_path", spec.valid_path(), stamps.valid, cache, problems);
  }
  return problems.ToStatus();
}

v1::JobSpec WithDefaults(v1::JobSpec spec) {
  spec::JobSpecValues values = ToValues(spec);
  spec::ApplyDefaults(values);
  CopyDefaultedFields(values, spec);
  return spec;
}

}  // namespace tuneledger
