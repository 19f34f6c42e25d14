// One job-spec contract (proto/tuneledger/v1/job_spec_contract.h): the server's validator and
// the trainer's spec parser, run side by side on specs generated across every field's edge
// values, must agree: the server accepts a spec exactly when the trainer accepts the JSON the
// worker writes for it (spec.json, proto field names), with the same message when both refuse,
// and the defaults the server fills are the ones the trainer would fill.
#include "tuneledger/v1/job_spec_contract.h"

#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lm/trainer_error.h"
#include "server/core/job_spec_validator.h"
#include "tuneledger/v1/jobs.pb.h"
#include "worker/trainer/spec/job_spec.h"

namespace tuneledger {
namespace {

struct Case {
  std::string name;
  std::function<void(v1::JobSpec&)> edit;
};

v1::JobSpec BaseSpec() {
  v1::JobSpec spec;
  spec.set_model_path("/models/m");
  spec.set_train_path("/data/train.jsonl");
  return spec;
}

// The spec.json the worker agent writes for a leased spec (attempt_runner.cc's options).
std::string SpecJson(const v1::JobSpec& spec) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string json;
  const auto status = google::protobuf::util::MessageToJsonString(spec, &json, options);
  EXPECT_TRUE(status.ok()) << status.ToString();
  return json;
}

// OK or the trainer's problem list ("" when accepted).
std::string TrainerProblems(const v1::JobSpec& spec, train::TrainJobSpec* parsed = nullptr) {
  try {
    train::TrainJobSpec result = train::ParseJobSpec(nlohmann::json::parse(SpecJson(spec)));
    if (parsed != nullptr) *parsed = result;
    return "";
  } catch (const train::TrainError& error) {
    const std::string prefix = "invalid job spec: ";
    std::string message = error.what();
    return message.rfind(prefix, 0) == 0 ? message.substr(prefix.size()) : message;
  }
}

constexpr int64_t kInt32Min = std::numeric_limits<int32_t>::min();
constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();

// Edge values of an integer rule [min, max] within int32.
std::vector<int64_t> IntEdges(int64_t min, int64_t max) {
  std::vector<int64_t> values = {kInt32Min, -1,      0,       1,   2,       min - 1,
                                 min,       min + 1, max - 1, max, max + 1, kInt32Max};
  std::vector<int64_t> in_range;
  for (int64_t v : values) {
    if (v >= kInt32Min && v <= kInt32Max) in_range.push_back(v);
  }
  return in_range;
}

const std::vector<double>& DoubleEdges() {
  static const std::vector<double> values = {-1e30,
                                             -1,
                                             -1e-9,
                                             0,
                                             1e-9,
                                             0.5,
                                             0.999999,
                                             1,
                                             2,
                                             10,
                                             10.0001,
                                             1e30,
                                             std::nan(""),
                                             std::numeric_limits<double>::infinity(),
                                             -std::numeric_limits<double>::infinity()};
  return values;
}

// Every field of the spec, each set to each of its edge values on an otherwise valid spec, and
// the rules that tie fields together.
std::vector<Case> Cases() {
  std::vector<Case> cases = {{"base", [](v1::JobSpec&) {}}};
  auto add_ints = [&](const std::string& field, int64_t min, int64_t max,
                      std::function<void(v1::JobSpec&, int32_t)> set) {
    for (int64_t value : IntEdges(min, max)) {
      cases.push_back({field + "=" + std::to_string(value),
                       [set, value](v1::JobSpec& s) { set(s, static_cast<int32_t>(value)); }});
    }
  };
  auto add_doubles = [&](const std::string& field, std::function<void(v1::JobSpec&, double)> set) {
    for (double value : DoubleEdges()) {
      cases.push_back(
          {field + "=" + std::to_string(value), [set, value](v1::JobSpec& s) { set(s, value); }});
    }
  };
  namespace c = spec;
  add_ints("lora.r", 1, c::kLoraRMax,
           [](v1::JobSpec& s, int32_t v) { s.mutable_lora()->set_r(v); });
  add_doubles("lora.alpha", [](v1::JobSpec& s, double v) { s.mutable_lora()->set_alpha(v); });
  add_doubles("lora.dropout", [](v1::JobSpec& s, double v) { s.mutable_lora()->set_dropout(v); });
  for (const std::vector<std::string>& modules : std::vector<std::vector<std::string>>{
           {"q_proj"},
           {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"},
           {"q_proj", "q_proj"},
           {"lm_head"},
           {""}}) {
    cases.push_back({"lora.target_modules", [modules](v1::JobSpec& s) {
                       for (const auto& m : modules) s.mutable_lora()->add_target_modules(m);
                     }});
  }
  // QLoRA's base quantization: NONE, NF4, INT8 and NF4_DQ go with any spec; unknown numbers do
  // not.
  add_ints("lora.quantize_base", 0, 4, [](v1::JobSpec& s, int32_t v) {
    s.mutable_lora()->set_quantize_base(static_cast<v1::LoraConfig::QuantizeBase>(v));
  });
  auto training = [](v1::JobSpec& s) { return s.mutable_training(); };
  add_ints("training.epochs", 0, c::kEpochsMax,
           [=](v1::JobSpec& s, int32_t v) { training(s)->set_epochs(v); });
  add_ints("training.max_steps", 0, c::kStepsMax,
           [=](v1::JobSpec& s, int32_t v) { training(s)->set_max_steps(v); });
  add_ints("training.batch_size", 0, c::kBatchSizeMax,
           [=](v1::JobSpec& s, int32_t v) { training(s)->set_batch_size(v); });
  add_ints("training.grad_accum_steps", 0, c::kGradAccumStepsMax,
           [=](v1::JobSpec& s, int32_t v) { training(s)->set_grad_accum_steps(v); });
  add_doubles("training.learning_rate",
              [=](v1::JobSpec& s, double v) { training(s)->set_learning_rate(v); });
  add_ints("training.warmup_steps", 0, c::kStepsMax,
           [=](v1::JobSpec& s, int32_t v) { training(s)->set_warmup_steps(v); });
  add_ints("training.lr_schedule", 0, 3, [=](v1::JobSpec& s, int32_t v) {
    training(s)->set_lr_schedule(static_cast<v1::TrainingConfig::LrSchedule>(v));
  });
  add_ints("training.seq_len", c::kSeqLenMin, c::kSeqLenMax,
           [=](v1::JobSpec& s, int32_t v) { training(s)->set_seq_len(v); });
  add_ints("training.seed", kInt32Min, kInt32Max,
           [=](v1::JobSpec& s, int32_t v) { training(s)->set_seed(v); });
  add_ints("training.precision", 0, 3, [=](v1::JobSpec& s, int32_t v) {
    training(s)->set_precision(static_cast<v1::TrainingConfig::Precision>(v));
  });
  add_ints("training.checkpoint_every_steps", 0, c::kStepsMax,
           [=](v1::JobSpec& s, int32_t v) { training(s)->set_checkpoint_every_steps(v); });
  add_ints("training.eval_every_steps", 0, c::kStepsMax,
           [=](v1::JobSpec& s, int32_t v) { training(s)->set_eval_every_steps(v); });
  add_doubles("training.weight_decay",
              [=](v1::JobSpec& s, double v) { training(s)->set_weight_decay(v); });
  add_doubles("training.max_grad_norm",
              [=](v1::JobSpec& s, double v) { training(s)->set_max_grad_norm(v); });
  add_ints("training.sample_max_tokens", 0, c::kSampleMaxTokensMax,
           [=](v1::JobSpec& s, int32_t v) { training(s)->set_sample_max_tokens(v); });
  auto early_stop = [=](v1::JobSpec& s) { return training(s)->mutable_early_stop(); };
  add_ints("training.early_stop.patience_evals", 0, c::kPatienceEvalsMax,
           [=](v1::JobSpec& s, int32_t v) {
             s.set_valid_path("/data/valid.jsonl");
             early_stop(s)->set_patience_evals(v);
           });
  add_doubles("training.early_stop.min_delta",
              [=](v1::JobSpec& s, double v) { early_stop(s)->set_min_delta(v); });
  add_doubles("training.early_stop.divergence_factor",
              [=](v1::JobSpec& s, double v) { early_stop(s)->set_divergence_factor(v); });
  for (const double factor : {c::kDivergenceFactorMax, c::kDivergenceFactorMax * 2}) {
    cases.push_back({"training.early_stop.divergence_factor=" + std::to_string(factor),
                     [=](v1::JobSpec& s) { early_stop(s)->set_divergence_factor(factor); }});
  }
  for (const bool with_validation : {false, true}) {
    cases.push_back({"early stop needs validation data", [=](v1::JobSpec& s) {
                       if (with_validation) s.set_valid_path("/data/valid.jsonl");
                       early_stop(s)->set_patience_evals(3);
                     }});
  }
  auto selection = [=](v1::JobSpec& s) { return training(s)->mutable_data_selection(); };
  for (int32_t method : {-1, 0, 1, 2, 3}) {
    for (double fraction : DoubleEdges()) {
      cases.push_back({"training.data_selection method=" + std::to_string(method) +
                           " keep_fraction=" + std::to_string(fraction),
                       [=](v1::JobSpec& s) {
                         selection(s)->set_method(static_cast<v1::DataSelection::Method>(method));
                         selection(s)->set_keep_fraction(fraction);
                       }});
    }
  }
  cases.push_back({"training.flags", [=](v1::JobSpec& s) {
                     training(s)->set_gradient_checkpointing(true);
                     training(s)->set_save_merged_model(true);
                     training(s)->set_sample_prompt("Once upon a time");
                   }});
  // Rules across fields.
  cases.push_back({"epochs and max_steps", [=](v1::JobSpec& s) {
                     training(s)->set_epochs(2);
                     training(s)->set_max_steps(10);
                   }});
  for (int32_t warmup : {9, 10, 11}) {
    cases.push_back({"warmup vs max_steps " + std::to_string(warmup), [=](v1::JobSpec& s) {
                       training(s)->set_max_steps(10);
                       training(s)->set_warmup_steps(warmup);
                     }});
  }
  add_doubles("budget.usd", [](v1::JobSpec& s, double v) { s.mutable_budget()->set_usd(v); });
  for (const std::vector<double>& thresholds :
       std::vector<std::vector<double>>{{0.5},
                                        {0},
                                        {0.5, 0.5},
                                        {0.8, 0.5},
                                        {10},
                                        {10.5},
                                        {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0}}) {
    cases.push_back({"budget.thresholds", [thresholds](v1::JobSpec& s) {
                       s.mutable_budget()->set_usd(5);
                       for (double t : thresholds) s.mutable_budget()->add_thresholds(t);
                     }});
  }
  add_ints("budget.policy", 0, 2, [](v1::JobSpec& s, int32_t v) {
    s.mutable_budget()->set_policy(static_cast<v1::Budget::Policy>(v));
  });
  add_ints("priority", c::kPriorityMin, c::kPriorityMax,
           [](v1::JobSpec& s, int32_t v) { s.set_priority(v); });
  add_ints("gpus", 0, c::kGpusMax, [](v1::JobSpec& s, int32_t v) { s.set_gpus(v); });
  add_ints("max_attempts", 0, c::kMaxAttemptsMax,
           [](v1::JobSpec& s, int32_t v) { s.set_max_attempts(v); });
  for (const auto& [key, value] :
       std::vector<std::pair<std::string, std::string>>{{"team", "nlp"}, {"", "x"}, {"b", ""}}) {
    cases.push_back({"labels[" + key + "]", [key = key, value = value](v1::JobSpec& s) {
                       (*s.mutable_labels())["a"] = "1";
                       (*s.mutable_labels())[key] = value;
                     }});
  }
  for (int32_t kind : {-1, 0, 1, 2, 3, 4, 5}) {
    for (double usd : {-1.0, 0.0, 12.5, std::nan("")}) {
      for (const char* source : {"", "paper"}) {
        cases.push_back({"inherited_costs", [=](v1::JobSpec& s) {
                           v1::InheritedCost* cost = s.add_inherited_costs();
                           cost->set_kind(static_cast<v1::InheritedCost::Kind>(kind));
                           cost->set_usd(usd);
                           cost->set_source(source);
                         }});
      }
    }
  }
  // Text limits count characters: 128 two-byte characters are 256 bytes and fine.
  std::string two_byte_128;
  for (int i = 0; i < 128; ++i) two_byte_128 += "\xc3\xa9";
  for (const std::string& text :
       {std::string(128, 'n'), std::string(129, 'n'), two_byte_128, two_byte_128 + "x"}) {
    cases.push_back(
        {"name/" + std::to_string(text.size()), [text](v1::JobSpec& s) { s.set_name(text); }});
    cases.push_back({"client_request_id/" + std::to_string(text.size()),
                     [text](v1::JobSpec& s) { s.set_client_request_id(text); }});
  }
  // Sizes: each limit and one past it.
  for (int n : {c::kLabelsMax, c::kLabelsMax + 1}) {
    cases.push_back({"labels x" + std::to_string(n), [n](v1::JobSpec& s) {
                       for (int i = 0; i < n; ++i) (*s.mutable_labels())["k" + std::to_string(i)];
                     }});
  }
  for (int n : {c::kLabelKeyMaxChars, c::kLabelKeyMaxChars + 1}) {
    cases.push_back({"label key/" + std::to_string(n),
                     [n](v1::JobSpec& s) { (*s.mutable_labels())[std::string(n, 'k')] = "v"; }});
  }
  for (int n : {c::kLabelValueMaxChars, c::kLabelValueMaxChars + 1}) {
    cases.push_back({"label value/" + std::to_string(n),
                     [n](v1::JobSpec& s) { (*s.mutable_labels())["team"] = std::string(n, 'v'); }});
  }
  for (int n : {c::kInheritedCostsMax, c::kInheritedCostsMax + 1}) {
    cases.push_back({"inherited_costs x" + std::to_string(n), [n](v1::JobSpec& s) {
                       for (int i = 0; i < n; ++i) {
                         v1::InheritedCost* cost = s.add_inherited_costs();
                         cost->set_kind(v1::InheritedCost::DATA);
                         cost->set_source("invoice");
                       }
                     }});
  }
  for (int source : {c::kInheritedCostSourceMaxChars, c::kInheritedCostSourceMaxChars + 1}) {
    for (int description :
         {c::kInheritedCostDescriptionMaxChars, c::kInheritedCostDescriptionMaxChars + 1}) {
      cases.push_back({"inherited cost text", [=](v1::JobSpec& s) {
                         v1::InheritedCost* cost = s.add_inherited_costs();
                         cost->set_kind(v1::InheritedCost::LABOUR);
                         cost->set_source(std::string(source, 's'));
                         cost->set_description(std::string(description, 'd'));
                       }});
    }
  }
  for (int n : {c::kBudgetThresholdsMax, c::kBudgetThresholdsMax + 1}) {
    cases.push_back({"budget.thresholds x" + std::to_string(n), [n](v1::JobSpec& s) {
                       s.mutable_budget()->set_usd(5);
                       for (int i = 1; i <= n; ++i) s.mutable_budget()->add_thresholds(0.25 * i);
                     }});
  }
  for (int n : {c::kSamplePromptMaxBytes, c::kSamplePromptMaxBytes + 1}) {
    cases.push_back({"sample_prompt/" + std::to_string(n),
                     [=](v1::JobSpec& s) { training(s)->set_sample_prompt(std::string(n, 'p')); }});
  }
  // sample_max_tokens against seq_len, with a prompt: explicit and default (64) new tokens.
  for (const auto& [seq_len, new_tokens] : std::vector<std::pair<int32_t, int32_t>>{
           {66, 0}, {65, 0}, {0, 254}, {0, 255}, {10, 8}, {10, 9}, {2, 1}, {1, 1}}) {
    cases.push_back(
        {"sample in context " + std::to_string(seq_len) + "/" + std::to_string(new_tokens),
         [=](v1::JobSpec& s) {
           training(s)->set_sample_prompt("Once upon a time");
           training(s)->set_seq_len(seq_len);
           training(s)->set_sample_max_tokens(new_tokens);
         }});
  }
  for (int n : {c::kPathMaxBytes, c::kPathMaxBytes + 1}) {
    cases.push_back({"paths/" + std::to_string(n), [n](v1::JobSpec& s) {
                       s.set_model_path(std::string(n, 'm'));
                       s.set_valid_path(std::string(n, 'v'));
                     }});
  }
  // More problems than an error lists: both sides cut the list at the same place.
  cases.push_back({"40 unknown modules", [](v1::JobSpec& s) {
                     for (int i = 0; i < 40; ++i) {
                       s.mutable_lora()->add_target_modules("m" + std::to_string(i));
                     }
                   }});
  cases.push_back({"no model_path", [](v1::JobSpec& s) { s.clear_model_path(); }});
  cases.push_back({"no train_path", [](v1::JobSpec& s) { s.clear_train_path(); }});
  cases.push_back({"valid_path", [](v1::JobSpec& s) { s.set_valid_path("/data/valid.jsonl"); }});
  return cases;
}

TEST(JobSpecContractTest, ServerAcceptsExactlyWhatTheTrainerAccepts) {
  int accepted = 0;
  int refused = 0;
  for (const Case& c : Cases()) {
    SCOPED_TRACE(c.name);
    v1::JobSpec spec = BaseSpec();
    c.edit(spec);
    const absl::Status server = ValidateJobSpec(spec);
    const std::string trainer = TrainerProblems(spec);
    EXPECT_EQ(server.ok(), trainer.empty())
        << "server: " << server.ToString() << "\ntrainer: " << trainer;
    if (!server.ok() && !trainer.empty()) {
      EXPECT_EQ(std::string(server.message()), trainer) << "same rules, same field paths";
      ++refused;
    } else if (server.ok()) {
      ++accepted;
    }
  }
  // The generator must exercise both sides of the rules.
  EXPECT_GT(accepted, 100);
  EXPECT_GT(refused, 100);
}

TEST(JobSpecContractTest, DefaultsFilledByTheServerAreTheTrainersDefaults) {
  for (const Case& c : Cases()) {
    v1::JobSpec spec = BaseSpec();
    c.edit(spec);
    if (!ValidateJobSpec(spec).ok()) continue;
    SCOPED_TRACE(c.name);
    const v1::JobSpec stored = WithDefaults(spec);
    EXPECT_TRUE(ValidateJobSpec(stored).ok()) << "the stored spec must still be valid";
    train::TrainJobSpec from_raw;
    train::TrainJobSpec from_stored;
    ASSERT_EQ(TrainerProblems(spec, &from_raw), "");
    ASSERT_EQ(TrainerProblems(stored, &from_stored), "");
    EXPECT_EQ(from_raw.lora_r, from_stored.lora_r);
    EXPECT_EQ(from_raw.lora_alpha, from_stored.lora_alpha);
    EXPECT_EQ(from_raw.lora_dropout, from_stored.lora_dropout);
    EXPECT_EQ(from_raw.target_modules, from_stored.target_modules);
    EXPECT_EQ(from_raw.quantize_base, from_stored.quantize_base);
    EXPECT_EQ(from_raw.epochs, from_stored.epochs);
    EXPECT_EQ(from_raw.max_steps, from_stored.max_steps);
    EXPECT_EQ(from_raw.batch_size, from_stored.batch_size);
    EXPECT_EQ(from_raw.grad_accum_steps, from_stored.grad_accum_steps);
    EXPECT_EQ(from_raw.learning_rate, from_stored.learning_rate);
    EXPECT_EQ(from_raw.lr_schedule, from_stored.lr_schedule);
    EXPECT_EQ(from_raw.seq_len, from_stored.seq_len);
    EXPECT_EQ(from_raw.checkpoint_every_steps, from_stored.checkpoint_every_steps);
    EXPECT_EQ(from_raw.eval_every_steps, from_stored.eval_every_steps);
    EXPECT_EQ(from_raw.weight_decay, from_stored.weight_decay);
    EXPECT_EQ(from_raw.max_grad_norm, from_stored.max_grad_norm);
    EXPECT_EQ(from_raw.sample_max_tokens, from_stored.sample_max_tokens);
    EXPECT_EQ(from_raw.patience_evals, from_stored.patience_evals);
    EXPECT_EQ(from_raw.min_delta, from_stored.min_delta);
    EXPECT_EQ(from_raw.divergence_factor, from_stored.divergence_factor);
  }
}

TEST(JobSpecContractTest, QuantizeBaseReachesTheTrainerAsItsScheme) {
  const std::vector<std::pair<v1::LoraConfig::QuantizeBase, train::quant::BaseQuantization>> cases =
      {{v1::LoraConfig::QUANTIZE_BASE_UNSPECIFIED, train::quant::BaseQuantization::kNone},
       {v1::LoraConfig::NONE, train::quant::BaseQuantization::kNone},
       {v1::LoraConfig::NF4, train::quant::BaseQuantization::kNf4},
       {v1::LoraConfig::INT8, train::quant::BaseQuantization::kInt8},
       {v1::LoraConfig::NF4_DQ, train::quant::BaseQuantization::kNf4DoubleQuant}};
  for (const auto& [value, scheme] : cases) {
    SCOPED_TRACE(v1::LoraConfig::QuantizeBase_Name(value));
    v1::JobSpec spec = BaseSpec();
    spec.mutable_lora()->set_quantize_base(value);
    ASSERT_TRUE(ValidateJobSpec(spec).ok());
    train::TrainJobSpec parsed;
    ASSERT_EQ(TrainerProblems(WithDefaults(spec), &parsed), "");
    EXPECT_EQ(parsed.quantize_base, scheme);
  }
  v1::JobSpec unknown = BaseSpec();
  unknown.mutable_lora()->set_quantize_base(static_cast<v1::LoraConfig::QuantizeBase>(7));
  EXPECT_EQ(TrainerProblems(unknown), "spec.lora.quantize_base: unknown quantize_base value 7");
}

template <typename EnumDescriptorFn, size_t N>
void ExpectEnumNames(EnumDescriptorFn descriptor,
                     const std::array<std::string_view, N>& contract_names) {
  const google::protobuf::EnumDescriptor* d = descriptor();
  ASSERT_EQ(static_cast<size_t>(d->value_count()), N) << d->full_name();
  for (int i = 0; i < d->value_count(); ++i) {
    EXPECT_EQ(d->value(i)->number(), i) << d->full_name();
    EXPECT_EQ(d->value(i)->name(), contract_names[i]) << d->full_name();
  }
}

TEST(JobSpecContractTest, EnumNamesAreTheProtosNames) {
  ExpectEnumNames(v1::TrainingConfig::LrSchedule_descriptor, spec::kLrScheduleNames);
  ExpectEnumNames(v1::LoraConfig::QuantizeBase_descriptor, spec::kQuantizeBaseNames);
  ExpectEnumNames(v1::TrainingConfig::Precision_descriptor, spec::kPrecisionNames);
  ExpectEnumNames(v1::Budget::Policy_descriptor, spec::kBudgetPolicyNames);
  ExpectEnumNames(v1::InheritedCost::Kind_descriptor, spec::kInheritedCostKindNames);
  ExpectEnumNames(v1::DataSelection::Method_descriptor, spec::kDataSelectionMethodNames);
}

}  // namespace
}  // namespace tuneledger
