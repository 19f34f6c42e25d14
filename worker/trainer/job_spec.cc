#include "worker/trainer/job_spec.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string_view>
#include <utility>

#include "worker/trainer/job_spec_defaults.h"
#include "worker/trainer/trainer_error.h"

namespace tuneledger::train {
namespace {

using nlohmann::json;
namespace defaults = ::tuneledger::spec_defaults;

// "max_grad_norm" -> "maxGradNorm", the proto3 JSON name of a field.
std::string LowerCamel(std::string_view snake) {
  std::string camel;
  bool upper = false;
  for (char c : snake) {
    if (c == '_') {
      upper = true;
    } else {
      camel += upper ? static_cast<char>(std::toupper(static_cast<unsigned char>(c))) : c;
      upper = false;
    }
  }
  return camel;
}

std::string Join(const std::string& path, std::string_view field) {
  return path.empty() ? std::string(field) : path + "." + std::string(field);
}

// Collects every problem of a spec so that one error lists them all.
class Problems {
 public:
  void Add(const std::string& field, const std::string& message) {
    problems_.push_back(field + ": " + message);
  }
  void ThrowIfAny() const {
    if (problems_.empty()) return;
    std::string joined = "invalid job spec: ";
    for (size_t i = 0; i < problems_.size(); ++i) {
      if (i > 0) joined += "; ";
      joined += problems_[i];
    }
    throw TrainError(joined);
  }

 private:
  std::vector<std::string> problems_;
};

// Reads the fields of one JSON object under either spelling and reports the ones nobody asked
// for as unknown.
class ObjectReader {
 public:
  ObjectReader(const json& object, std::string path, Problems& problems)
      : object_(object), path_(std::move(path)), problems_(problems) {
    if (!object_.is_object()) {
      problems_.Add(path_.empty() ? "spec" : path_, "must be a JSON object");
    }
  }

  // The value of a field, or nullptr when absent or null.
  const json* Find(std::string_view snake_name) {
    if (!object_.is_object()) return nullptr;
    const std::string snake(snake_name);
    const std::string camel = LowerCamel(snake_name);
    known_.insert(snake);
    known_.insert(camel);
    const auto snake_it = object_.find(snake);
    const auto camel_it = camel == snake ? object_.end() : object_.find(camel);
    if (snake_it != object_.end() && camel_it != object_.end()) {
      problems_.Add(Join(path_, snake), "given twice (as \"" + snake + "\" and \"" + camel + "\")");
      return nullptr;
    }
    const auto it = snake_it != object_.end() ? snake_it : camel_it;
    if (it == object_.end() || it->is_null()) return nullptr;
    return &*it;
  }

  void ReportUnknownFields() const {
    if (!object_.is_object()) return;
    for (const auto& item : object_.items()) {
      if (known_.count(item.key()) == 0) problems_.Add(Join(path_, item.key()), "unknown field");
    }
  }

  const std::string& path() const { return path_; }
  Problems& problems() { return problems_; }

 private:
  const json& object_;
  std::string path_;
  Problems& problems_;
  std::set<std::string> known_;
};

// proto3 JSON integers: numbers (integral) or decimal strings.
bool ToInt64(const json& value, int64_t& out) {
  if (value.is_number_integer()) {
    if (value.is_number_unsigned() &&
        value.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return false;
    }
    out = value.get<int64_t>();
    return true;
  }
  if (value.is_number_float()) {
    const double d = value.get<double>();
    if (!std::isfinite(d) || std::floor(d) != d || std::fabs(d) > 9.0e18) return false;
    out = static_cast<int64_t>(d);
    return true;
  }
  if (value.is_string()) {
    const std::string& s = value.get_ref<const std::string&>();
    if (s.empty()) return false;
    size_t used = 0;
    try {
      out = std::stoll(s, &used, 10);
    } catch (const std::exception&) {
      return false;
    }
    return used == s.size();
  }
  return false;
}

bool ToDouble(const json& value, double& out) {
  if (value.is_number()) {
    out = value.get<double>();
    return true;
  }
  if (value.is_string()) {
    const std::string& s = value.get_ref<const std::string&>();
    if (s == "NaN") {
      out = std::nan("");
      return true;
    }
    if (s == "Infinity" || s == "-Infinity") {
      out = s[0] == '-' ? -HUGE_VAL : HUGE_VAL;
      return true;
    }
    size_t used = 0;
    try {
      out = std::stod(s, &used);
    } catch (const std::exception&) {
      return false;
    }
    return !s.empty() && used == s.size();
  }
  return false;
}

int64_t ReadInt(ObjectReader& reader, std::string_view field, int64_t min, int64_t max,
                int64_t fallback = 0) {
  const json* value = reader.Find(field);
  if (value == nullptr) return fallback;
  int64_t parsed = 0;
  if (!ToInt64(*value, parsed)) {
    reader.problems().Add(Join(reader.path(), field), "must be an integer, got " + value->dump());
    return fallback;
  }
  if (parsed < min || parsed > max) {
    reader.problems().Add(Join(reader.path(), field), "must be in [" + std::to_string(min) + ", " +
                                                          std::to_string(max) + "], got " +
                                                          std::to_string(parsed));
    return fallback;
  }
  return parsed;
}

// Returns fallback when absent; `present` tells optional fields apart from their default.
double ReadDouble(ObjectReader& reader, std::string_view field, double fallback,
                  bool* present = nullptr) {
  const json* value = reader.Find(field);
  if (present != nullptr) *present = value != nullptr;
  if (value == nullptr) return fallback;
  double parsed = 0;
  if (!ToDouble(*value, parsed)) {
    reader.problems().Add(Join(reader.path(), field), "must be a number, got " + value->dump());
    return fallback;
  }
  return parsed;
}

bool ReadBool(ObjectReader& reader, std::string_view field) {
  const json* value = reader.Find(field);
  if (value == nullptr) return false;
  if (!value->is_boolean()) {
    reader.problems().Add(Join(reader.path(), field),
                          "must be true or false, got " + value->dump());
    return false;
  }
  return value->get<bool>();
}

std::string ReadString(ObjectReader& reader, std::string_view field) {
  const json* value = reader.Find(field);
  if (value == nullptr) return "";
  if (!value->is_string()) {
    reader.problems().Add(Join(reader.path(), field), "must be a string, got " + value->dump());
    return "";
  }
  return value->get<std::string>();
}

// An enum by name or number; returns the index into `names` (names[i] has number i).
int ReadEnum(ObjectReader& reader, std::string_view field, const std::vector<std::string>& names) {
  const json* value = reader.Find(field);
  if (value == nullptr) return 0;
  if (value->is_string()) {
    for (size_t i = 0; i < names.size(); ++i) {
      if (value->get_ref<const std::string&>() == names[i]) return static_cast<int>(i);
    }
  } else if (value->is_number_integer()) {
    const int64_t number = value->get<int64_t>();
    if (number >= 0 && number < static_cast<int64_t>(names.size())) {
      return static_cast<int>(number);
    }
  }
  std::string expected;
  for (const auto& name : names) expected += (expected.empty() ? "" : ", ") + name;
  reader.problems().Add(Join(reader.path(), field),
                        "must be one of " + expected + ", got " + value->dump());
  return 0;
}

// Visits each element of a repeated field; a non-array is a problem.
template <typename Visit>
void ForEachElement(ObjectReader& reader, std::string_view field, Visit visit) {
  const json* value = reader.Find(field);
  if (value == nullptr) return;
  if (!value->is_array()) {
    reader.problems().Add(Join(reader.path(), field), "must be a JSON array, got " + value->dump());
    return;
  }
  for (size_t i = 0; i < value->size(); ++i) {
    visit((*value)[i], Join(reader.path(), field) + "[" + std::to_string(i) + "]");
  }
}

constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();
constexpr int64_t kInt32Min = std::numeric_limits<int32_t>::min();

void ParseLora(const json& object, TrainJobSpec& spec, Problems& problems) {
  ObjectReader reader(object, "lora", problems);
  // r has presence in the proto: absent = default, an explicit 0 is out of range.
  spec.lora_r = static_cast<int>(ReadInt(reader, "r", 1, defaults::kLoraRMax));
  spec.lora_alpha = ReadDouble(reader, "alpha", 0.0);
  bool has_dropout = false;
  spec.lora_dropout = ReadDouble(reader, "dropout", defaults::kLoraDropout, &has_dropout);
  ForEachElement(reader, "target_modules", [&](const json& item, const std::string& path) {
    if (!item.is_string()) {
      problems.Add(path, "must be a string, got " + item.dump());
      return;
    }
    spec.target_modules.push_back(item.get<std::string>());
  });
  reader.ReportUnknownFields();
}

void ParseTraining(const json& object, TrainJobSpec& spec, Problems& problems) {
  ObjectReader reader(object, "training", problems);
  spec.epochs = static_cast<int>(ReadInt(reader, "epochs", 0, kInt32Max));
  spec.max_steps = static_cast<int>(ReadInt(reader, "max_steps", 0, kInt32Max));
  spec.batch_size = static_cast<int>(ReadInt(reader, "batch_size", 0, kInt32Max));
  spec.grad_accum_steps = static_cast<int>(ReadInt(reader, "grad_accum_steps", 0, kInt32Max));
  spec.learning_rate = ReadDouble(reader, "learning_rate", 0.0);
  spec.warmup_steps = static_cast<int>(ReadInt(reader, "warmup_steps", 0, kInt32Max));
  static const std::vector<std::string> kSchedules = {"SCHEDULE_UNSPECIFIED", "COSINE", "LINEAR",
                                                      "CONSTANT"};
  switch (ReadEnum(reader, "lr_schedule", kSchedules)) {
    case 2:
      spec.lr_schedule = LrScheduleKind::kLinear;
      break;
    case 3:
      spec.lr_schedule = LrScheduleKind::kConstant;
      break;
    default:
      spec.lr_schedule = LrScheduleKind::kCosine;
  }
  spec.seq_len = static_cast<int>(ReadInt(reader, "seq_len", 0, defaults::kSeqLenMax));
  spec.seed = ReadInt(reader, "seed", kInt32Min, kInt32Max);
  static const std::vector<std::string> kPrecisions = {"PRECISION_UNSPECIFIED", "FP32", "BF16",
                                                       "FP16"};
  spec.precision = static_cast<Precision>(ReadEnum(reader, "precision", kPrecisions));
  spec.gradient_checkpointing = ReadBool(reader, "gradient_checkpointing");
  spec.checkpoint_every_steps =
      static_cast<int>(ReadInt(reader, "checkpoint_every_steps", 0, kInt32Max));
  spec.eval_every_steps = static_cast<int>(ReadInt(reader, "eval_every_steps", 0, kInt32Max));
  spec.weight_decay = ReadDouble(reader, "weight_decay", defaults::kWeightDecay);
  spec.max_grad_norm = ReadDouble(reader, "max_grad_norm", defaults::kMaxGradNorm);
  spec.save_merged_model = ReadBool(reader, "save_merged_model");
  spec.sample_prompt = ReadString(reader, "sample_prompt");
  spec.sample_max_tokens = static_cast<int>(ReadInt(reader, "sample_max_tokens", 0, kInt32Max));
  reader.ReportUnknownFields();
}

// Budget, inherited costs, labels and scheduling fields: checked for shape only.
void ParseBudget(const json& object, Problems& problems) {
  ObjectReader reader(object, "budget", problems);
  ReadDouble(reader, "usd", 0.0);
  ForEachElement(reader, "thresholds", [&](const json& item, const std::string& path) {
    double ignored = 0;
    if (!ToDouble(item, ignored)) problems.Add(path, "must be a number, got " + item.dump());
  });
  ReadEnum(reader, "policy", {"POLICY_UNSPECIFIED", "CANCEL", "ALERT_ONLY"});
  reader.ReportUnknownFields();
}

void ParseInheritedCost(const json& object, const std::string& path, Problems& problems) {
  ObjectReader reader(object, path, problems);
  ReadEnum(reader, "kind",
           {"KIND_UNSPECIFIED", "BASE_MODEL_PRETRAINING", "DATA", "LABOUR", "OTHER"});
  ReadDouble(reader, "usd", 0.0);
  ReadString(reader, "source");
  ReadString(reader, "description");
  reader.ReportUnknownFields();
}

void ApplyDefaultsAndValidate(TrainJobSpec& spec, Problems& problems) {
  if (spec.model_path.empty()) problems.Add("model_path", "required");
  if (spec.train_path.empty()) problems.Add("train_path", "required");

  if (spec.lora_r == 0) spec.lora_r = defaults::kLoraR;
  if (spec.lora_alpha == 0) spec.lora_alpha = defaults::kLoraAlpha;
  if (!(spec.lora_alpha > 0) || !std::isfinite(spec.lora_alpha)) {
    problems.Add("lora.alpha", "must be > 0, got " + std::to_string(spec.lora_alpha));
  }
  if (!(spec.lora_dropout >= 0 && spec.lora_dropout < 1)) {
    problems.Add("lora.dropout", "must be in [0, 1), got " + std::to_string(spec.lora_dropout));
  }
  if (spec.target_modules.empty()) {
    spec.target_modules.assign(defaults::kTargetModules.begin(), defaults::kTargetModules.end());
  }
  std::set<std::string> seen;
  for (const auto& module : spec.target_modules) {
    bool known = false;
    for (auto name : defaults::kAllTargetModules) known = known || module == name;
    if (!known) {
      problems.Add("lora.target_modules", "unknown module \"" + module +
                                              "\" (known: q_proj k_proj v_proj o_proj gate_proj "
                                              "up_proj down_proj)");
    } else if (!seen.insert(module).second) {
      problems.Add("lora.target_modules", "\"" + module + "\" given twice");
    }
  }

  if (spec.epochs > 0 && spec.max_steps > 0) {
    problems.Add("training.epochs", "only one of epochs and max_steps may be set");
  }
  if (spec.epochs == 0 && spec.max_steps == 0) spec.epochs = defaults::kEpochs;
  if (spec.batch_size == 0) spec.batch_size = defaults::kBatchSize;
  if (spec.grad_accum_steps == 0) spec.grad_accum_steps = defaults::kGradAccumSteps;
  if (spec.learning_rate == 0) spec.learning_rate = defaults::kLearningRate;
  if (!(spec.learning_rate > 0) || !std::isfinite(spec.learning_rate)) {
    problems.Add("training.learning_rate",
                 "must be > 0, got " + std::to_string(spec.learning_rate));
  }
  if (spec.seq_len == 0) spec.seq_len = defaults::kSeqLen;
  if (spec.seq_len < 2) {
    problems.Add("training.seq_len", "must be >= 2, got " + std::to_string(spec.seq_len));
  }
  if (spec.checkpoint_every_steps == 0) {
    spec.checkpoint_every_steps = defaults::kCheckpointEverySteps;
  }
  if (spec.eval_every_steps == 0) spec.eval_every_steps = defaults::kEvalEverySteps;
  if (!(spec.weight_decay >= 0) || !std::isfinite(spec.weight_decay)) {
    problems.Add("training.weight_decay", "must be >= 0, got " + std::to_string(spec.weight_decay));
  }
  if (!(spec.max_grad_norm >= 0) || !std::isfinite(spec.max_grad_norm)) {
    problems.Add("training.max_grad_norm",
                 "must be >= 0, got " + std::to_string(spec.max_grad_norm));
  }
  if (spec.sample_max_tokens == 0) spec.sample_max_tokens = defaults::kSampleMaxTokens;
}

}  // namespace

const char* PrecisionName(Precision precision) {
  switch (precision) {
    case Precision::kFp32:
      return "fp32";
    case Precision::kBf16:
      return "bf16";
    case Precision::kFp16:
      return "fp16";
    case Precision::kUnspecified:
      break;
  }
  return "auto";
}

TrainJobSpec ParseJobSpec(const json& object) {
  Problems problems;
  TrainJobSpec spec;
  ObjectReader reader(object, "", problems);
  spec.name = ReadString(reader, "name");
  spec.model_path = ReadString(reader, "model_path");
  spec.train_path = ReadString(reader, "train_path");
  spec.valid_path = ReadString(reader, "valid_path");
  if (const json* lora = reader.Find("lora")) ParseLora(*lora, spec, problems);
  if (const json* training = reader.Find("training")) ParseTraining(*training, spec, problems);
  if (const json* budget = reader.Find("budget")) ParseBudget(*budget, problems);
  ReadInt(reader, "priority", kInt32Min, kInt32Max);
  if (const json* labels = reader.Find("labels")) {
    if (!labels->is_object()) {
      problems.Add("labels", "must be a JSON object of strings, got " + labels->dump());
    } else {
      for (const auto& item : labels->items()) {
        if (!item.value().is_string()) problems.Add("labels." + item.key(), "must be a string");
      }
    }
  }
  ForEachElement(reader, "inherited_costs", [&](const json& item, const std::string& path) {
    ParseInheritedCost(item, path, problems);
  });
  ReadString(reader, "client_request_id");
  ReadInt(reader, "gpus", 0, kInt32Max);
  ReadInt(reader, "max_attempts", 0, kInt32Max);
  reader.ReportUnknownFields();
  problems.ThrowIfAny();  // shape errors first: defaults on a malformed spec mean nothing

  ApplyDefaultsAndValidate(spec, problems);
  problems.ThrowIfAny();
  return spec;
}

TrainJobSpec LoadJobSpec(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw TrainError(path + ": cannot open the job spec");
  std::stringstream text;
  text << in.rdbuf();
  json object;
  try {
    object = json::parse(text.str());
  } catch (const json::parse_error& e) {
    throw TrainError(path + ": not valid JSON: " + e.what());
  }
  TrainJobSpec spec;
  try {
    spec = ParseJobSpec(object);
  } catch (const TrainError& e) {
    throw TrainError(path + ": " + e.what());
  }
  // Relative data and model paths are relative to the spec file's folder (as for
  // `tunectl submit --spec`), so a spec works from any working directory.
  const std::filesystem::path spec_dir = std::filesystem::path(path).parent_path();
  for (std::string* field : {&spec.model_path, &spec.train_path, &spec.valid_path}) {
    if (!field->empty() && std::filesystem::path(*field).is_relative()) {
      *field = (spec_dir / *field).lexically_normal().string();
    }
  }
  return spec;
}

}  // namespace tuneledger::train
