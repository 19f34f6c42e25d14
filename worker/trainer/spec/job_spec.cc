#include "worker/trainer/spec/job_spec.h"

#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string_view>
#include <utility>

#include "lm/json_parse.h"
#include "lm/trainer_error.h"
#include "tuneledger/v1/job_spec_contract.h"

namespace tuneledger::train {
namespace {

using nlohmann::json;

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
  return path + "." + std::string(field);
}

// Every integer of a JobSpec is a proto int32.
constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();
constexpr int64_t kInt32Min = std::numeric_limits<int32_t>::min();

// Collects every problem of a spec so that one error lists them all, spelled as the server
// spells them (job_spec_contract.h).
class Problems {
 public:
  void Add(const std::string& field, const std::string& message) {
    problems_.push_back({field, message});
  }
  void Add(std::vector<spec::Problem> problems) {
    for (auto& problem : problems) problems_.push_back(std::move(problem));
  }
  void ThrowIfAny() const {
    if (problems_.empty()) return;
    throw TrainError("invalid job spec: " + spec::JoinProblems(problems_));
  }

 private:
  std::vector<spec::Problem> problems_;
};

// Reads the fields of one JSON object under either spelling and reports the ones nobody asked
// for as unknown.
class ObjectReader {
 public:
  ObjectReader(const json& object, std::string path, Problems& problems)
      : object_(object), path_(std::move(path)), problems_(problems) {
    if (!object_.is_object()) {
      problems_.Add(path_, "must be a JSON object");
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

// An int32 field (number or decimal string); nullopt when absent or malformed (a problem).
std::optional<int64_t> ReadInt(ObjectReader& reader, std::string_view field) {
  const json* value = reader.Find(field);
  if (value == nullptr) return std::nullopt;
  int64_t parsed = 0;
  if (!ToInt64(*value, parsed) || parsed < kInt32Min || parsed > kInt32Max) {
    reader.problems().Add(Join(reader.path(), field),
                          "must be a 32-bit integer, got " + value->dump());
    return std::nullopt;
  }
  return parsed;
}

// A double field (number, decimal string, "NaN", "Infinity"); nullopt when absent or malformed.
std::optional<double> ReadDouble(ObjectReader& reader, std::string_view field) {
  const json* value = reader.Find(field);
  if (value == nullptr) return std::nullopt;
  double parsed = 0;
  if (!ToDouble(*value, parsed)) {
    reader.problems().Add(Join(reader.path(), field), "must be a number, got " + value->dump());
    return std::nullopt;
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

// An enum by name or number (proto3 JSON); returns its number, or 0 after a problem. Numbers
// outside `names` pass through: the contract names them as unknown values.
template <size_t N>
int64_t ReadEnum(ObjectReader& reader, std::string_view field,
                 const std::array<std::string_view, N>& names) {
  const json* value = reader.Find(field);
  if (value == nullptr) return 0;
  if (value->is_string()) {
    for (size_t i = 0; i < names.size(); ++i) {
      if (value->get_ref<const std::string&>() == names[i]) return static_cast<int64_t>(i);
    }
  } else if (value->is_number_integer()) {
    int64_t number = 0;
    if (ToInt64(*value, number) && number >= kInt32Min && number <= kInt32Max) return number;
  }
  std::string expected;
  for (std::string_view name : names)
    expected += (expected.empty() ? "" : ", ") + std::string(name);
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

void ParseLora(const json& object, spec::JobSpecValues::Lora& lora, Problems& problems) {
  ObjectReader reader(object, "spec.lora", problems);
  lora.r = ReadInt(reader, "r");
  lora.alpha = ReadDouble(reader, "alpha").value_or(0.0);
  lora.dropout = ReadDouble(reader, "dropout");
  ForEachElement(reader, "target_modules", [&](const json& item, const std::string& path) {
    if (!item.is_string()) {
      problems.Add(path, "must be a string, got " + item.dump());
      return;
    }
    lora.target_modules.push_back(item.get<std::string>());
  });
  lora.quantize_base = ReadEnum(reader, "quantize_base", spec::kQuantizeBaseNames);
  reader.ReportUnknownFields();
}

void ParseEarlyStop(const json& object, spec::JobSpecValues::Training::EarlyStop& early_stop,
                    Problems& problems) {
  ObjectReader reader(object, "spec.training.early_stop", problems);
  early_stop.patience_evals = ReadInt(reader, "patience_evals").value_or(0);
  early_stop.min_delta = ReadDouble(reader, "min_delta").value_or(0.0);
  early_stop.divergence_factor = ReadDouble(reader, "divergence_factor").value_or(0.0);
  reader.ReportUnknownFields();
}

void ParseDataSelection(const json& object, spec::JobSpecValues::Training::DataSelection& selection,
                        Problems& problems) {
  ObjectReader reader(object, "spec.training.data_selection", problems);
  selection.method = ReadEnum(reader, "method", spec::kDataSelectionMethodNames);
  selection.keep_fraction = ReadDouble(reader, "keep_fraction").value_or(0.0);
  reader.ReportUnknownFields();
}

void ParseTraining(const json& object, spec::JobSpecValues::Training& t, Problems& problems) {
  ObjectReader reader(object, "spec.training", problems);
  t.epochs = ReadInt(reader, "epochs").value_or(0);
  t.max_steps = ReadInt(reader, "max_steps").value_or(0);
  t.batch_size = ReadInt(reader, "batch_size").value_or(0);
  t.grad_accum_steps = ReadInt(reader, "grad_accum_steps").value_or(0);
  t.learning_rate = ReadDouble(reader, "learning_rate").value_or(0.0);
  t.warmup_steps = ReadInt(reader, "warmup_steps").value_or(0);
  t.lr_schedule = ReadEnum(reader, "lr_schedule", spec::kLrScheduleNames);
  t.seq_len = ReadInt(reader, "seq_len").value_or(0);
  t.seed = ReadInt(reader, "seed").value_or(0);
  t.precision = ReadEnum(reader, "precision", spec::kPrecisionNames);
  t.gradient_checkpointing = ReadBool(reader, "gradient_checkpointing");
  t.checkpoint_every_steps = ReadInt(reader, "checkpoint_every_steps").value_or(0);
  t.eval_every_steps = ReadInt(reader, "eval_every_steps").value_or(0);
  t.weight_decay = ReadDouble(reader, "weight_decay");
  t.max_grad_norm = ReadDouble(reader, "max_grad_norm");
  t.save_merged_model = ReadBool(reader, "save_merged_model");
  t.sample_prompt = ReadString(reader, "sample_prompt");
  t.sample_max_tokens = ReadInt(reader, "sample_max_tokens").value_or(0);
  if (const json* early_stop = reader.Find("early_stop")) {
    ParseEarlyStop(*early_stop, t.early_stop, problems);
  }
  if (const json* selection = reader.Find("data_selection")) {
    ParseDataSelection(*selection, t.data_selection, problems);
  }
  reader.ReportUnknownFields();
}

void ParseBudget(const json& object, spec::JobSpecValues::Budget& budget, Problems& problems) {
  ObjectReader reader(object, "spec.budget", problems);
  budget.usd = ReadDouble(reader, "usd");
  ForEachElement(reader, "thresholds", [&](const json& item, const std::string& path) {
    double threshold = 0;
    if (!ToDouble(item, threshold)) {
      problems.Add(path, "must be a number, got " + item.dump());
      return;
    }
    budget.thresholds.push_back(threshold);
  });
  budget.policy = ReadEnum(reader, "policy", spec::kBudgetPolicyNames);
  reader.ReportUnknownFields();
}

spec::JobSpecValues::InheritedCost ParseInheritedCost(const json& object, const std::string& path,
                                                      Problems& problems) {
  ObjectReader reader(object, path, problems);
  spec::JobSpecValues::InheritedCost cost;
  cost.kind = ReadEnum(reader, "kind", spec::kInheritedCostKindNames);
  cost.usd = ReadDouble(reader, "usd").value_or(0.0);
  cost.source = ReadString(reader, "source");
  cost.description = ReadString(reader, "description");
  reader.ReportUnknownFields();
  return cost;
}

// The JSON's shape (types, unknown fields) into the contract's values.
spec::JobSpecValues ReadValues(const json& object, Problems& problems) {
  spec::JobSpecValues values;
  ObjectReader reader(object, "spec", problems);
  values.name = ReadString(reader, "name");
  values.model_path = ReadString(reader, "model_path");
  values.train_path = ReadString(reader, "train_path");
  values.valid_path = ReadString(reader, "valid_path");
  if (const json* lora = reader.Find("lora")) ParseLora(*lora, values.lora, problems);
  if (const json* training = reader.Find("training")) {
    ParseTraining(*training, values.training, problems);
  }
  if (const json* budget = reader.Find("budget")) ParseBudget(*budget, values.budget, problems);
  values.priority = ReadInt(reader, "priority").value_or(0);
  if (const json* labels = reader.Find("labels")) {
    if (!labels->is_object()) {
      problems.Add("spec.labels", "must be a JSON object of strings, got " + labels->dump());
    } else {
      for (const auto& item : labels->items()) {
        if (!item.value().is_string()) {
          problems.Add("spec.labels." + item.key(), "must be a string");
          continue;
        }
        values.labels.emplace_back(item.key(), item.value().get<std::string>());
      }
    }
  }
  ForEachElement(reader, "inherited_costs", [&](const json& item, const std::string& path) {
    values.inherited_costs.push_back(ParseInheritedCost(item, path, problems));
  });
  values.client_request_id = ReadString(reader, "client_request_id");
  values.gpus = ReadInt(reader, "gpus").value_or(0);
  values.max_attempts = ReadInt(reader, "max_attempts").value_or(0);
  reader.ReportUnknownFields();
  return values;
}

// The trainer's resolved view of a validated spec with its defaults applied.
TrainJobSpec ToTrainJobSpec(const spec::JobSpecValues& values) {
  TrainJobSpec spec;
  spec.name = values.name;
  spec.model_path = values.model_path;
  spec.train_path = values.train_path;
  spec.valid_path = values.valid_path;
  spec.lora_r = static_cast<int>(*values.lora.r);
  spec.lora_alpha = values.lora.alpha;
  spec.lora_dropout = *values.lora.dropout;
  spec.target_modules = values.lora.target_modules;
  spec.quantize_base = values.lora.quantize_base == 2   ? quant::BaseQuantization::kNf4
                       : values.lora.quantize_base == 3 ? quant::BaseQuantization::kInt8
                       : values.lora.quantize_base == 4 ? quant::BaseQuantization::kNf4DoubleQuant
                                                        : quant::BaseQuantization::kNone;
  const spec::JobSpecValues::Training& t = values.training;
  spec.epochs = static_cast<int>(t.epochs);
  spec.max_steps = static_cast<int>(t.max_steps);
  spec.batch_size = static_cast<int>(t.batch_size);
  spec.grad_accum_steps = static_cast<int>(t.grad_accum_steps);
  spec.learning_rate = t.learning_rate;
  spec.warmup_steps = static_cast<int>(t.warmup_steps);
  spec.lr_schedule = t.lr_schedule == 2   ? LrScheduleKind::kLinear
                     : t.lr_schedule == 3 ? LrScheduleKind::kConstant
                                          : LrScheduleKind::kCosine;
  spec.seq_len = static_cast<int>(t.seq_len);
  spec.seed = t.seed;
  spec.precision = static_cast<Precision>(t.precision);
  spec.gradient_checkpointing = t.gradient_checkpointing;
  spec.checkpoint_every_steps = static_cast<int>(t.checkpoint_every_steps);
  spec.eval_every_steps = static_cast<int>(t.eval_every_steps);
  spec.weight_decay = *t.weight_decay;
  spec.max_grad_norm = *t.max_grad_norm;
  spec.save_merged_model = t.save_merged_model;
  spec.sample_prompt = t.sample_prompt;
  spec.sample_max_tokens = static_cast<int>(t.sample_max_tokens);
  spec.patience_evals = static_cast<int>(t.early_stop.patience_evals);
  spec.min_delta = t.early_stop.min_delta;
  spec.divergence_factor = t.early_stop.divergence_factor;
  spec.selection_method = static_cast<SelectionMethod>(t.data_selection.method);
  spec.keep_fraction = t.data_selection.keep_fraction;
  return spec;
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
  spec::JobSpecValues values = ReadValues(object, problems);
  problems.ThrowIfAny();  // shape errors first: rules on a malformed spec mean nothing
  problems.Add(spec::Validate(values));
  problems.ThrowIfAny();
  spec::ApplyDefaults(values);
  return ToTrainJobSpec(values);
}

TrainJobSpec LoadJobSpec(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw TrainError(path + ": cannot open the job spec");
  std::stringstream text;
  text << in.rdbuf();
  const json object = ParseJsonOrThrow<json>(text.str(), path + ": ");
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
