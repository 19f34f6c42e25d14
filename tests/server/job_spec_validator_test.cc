#include "server/core/job_spec_validator.h"

#include <functional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/job_fixtures.h"
#include "tests/testing/status_matchers.h"

namespace tuneledger {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::tuneledger::testing::MakeJobInputs;
using ::tuneledger::testing::StatusIs;
using ::tuneledger::testing::ValidSpec;

struct RuleCase {
  std::string rule;  // test name
  std::function<void(v1::JobSpec&)> break_spec;
  std::string field;   // the field path the message must name
  std::string detail;  // and what it must say about it
};

class ValidateJobSpecRuleTest : public ::testing::TestWithParam<RuleCase> {};

TEST_P(ValidateJobSpecRuleTest, RejectsAndNamesTheField) {
  v1::JobSpec spec = ValidSpec();
  GetParam().break_spec(spec);
  EXPECT_THAT(ValidateJobSpec(spec),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(GetParam().field + ": "), HasSubstr(GetParam().detail))));
}

const std::vector<RuleCase>& Rules() {
  static const auto* rules = new std::vector<RuleCase>{
      {"NameTooLong", [](v1::JobSpec& s) { s.set_name(std::string(129, 'x')); }, "spec.name",
       "at most 128"},
      {"ModelPathMissing", [](v1::JobSpec& s) { s.clear_model_path(); }, "spec.model_path",
       "required"},
      {"TrainPathMissing", [](v1::JobSpec& s) { s.clear_train_path(); }, "spec.train_path",
       "required"},
      {"LoraRZero", [](v1::JobSpec& s) { s.mutable_lora()->set_r(0); }, "spec.lora.r",
       "must be in [1, 1024], got 0"},
      {"LoraRTooBig", [](v1::JobSpec& s) { s.mutable_lora()->set_r(1025); }, "spec.lora.r",
       "got 1025"},
      {"LoraAlphaNegative", [](v1::JobSpec& s) { s.mutable_lora()->set_alpha(-1); },
       "spec.lora.alpha", "must be > 0"},
      {"LoraDropoutOne", [](v1::JobSpec& s) { s.mutable_lora()->set_dropout(1.0); },
       "spec.lora.dropout", "must be in [0, 1), got 1"},
      {"UnknownTargetModule",
       [](v1::JobSpec& s) {
         s.mutable_lora()->add_target_modules("q_proj");
         s.mutable_lora()->add_target_modules("qkv_proj");
       },
       "spec.lora.target_modules[1]", "unknown module \"qkv_proj\""},
      {"DuplicateTargetModule",
       [](v1::JobSpec& s) {
         s.mutable_lora()->add_target_modules("v_proj");
         s.mutable_lora()->add_target_modules("v_proj");
       },
       "spec.lora.target_modules[1]", "listed twice"},
      {"EpochsAndMaxStepsBoth", [](v1::JobSpec& s) { s.mutable_training()->set_epochs(2); },
       "spec.training.max_steps", "must not be set together with spec.training.epochs"},
      {"NegativeEpochs",
       [](v1::JobSpec& s) {
         s.mutable_training()->clear_max_steps();
         s.mutable_training()->set_epochs(-1);
       },
       "spec.training.epochs", "got -1"},
      {"NegativeBatchSize", [](v1::JobSpec& s) { s.mutable_training()->set_batch_size(-8); },
       "spec.training.batch_size", "got -8"},
      {"NegativeGradAccum", [](v1::JobSpec& s) { s.mutable_training()->set_grad_accum_steps(-1); },
       "spec.training.grad_accum_steps", "got -1"},
      {"NegativeLearningRate",
       [](v1::JobSpec& s) { s.mutable_training()->set_learning_rate(-0.1); },
       "spec.training.learning_rate", "must be > 0, got -0.1"},
      {"WarmupPastMaxSteps", [](v1::JobSpec& s) { s.mutable_training()->set_warmup_steps(101); },
       "spec.training.warmup_steps", "must be <= spec.training.max_steps"},
      {"UnknownSchedule",
       [](v1::JobSpec& s) {
         s.mutable_training()->set_lr_schedule(static_cast<v1::TrainingConfig::LrSchedule>(42));
       },
       "spec.training.lr_schedule", "42"},
      {"SeqLenTooLong", [](v1::JobSpec& s) { s.mutable_training()->set_seq_len(200000); },
       "spec.training.seq_len", "got 200000"},
      {"UnknownPrecision",
       [](v1::JobSpec& s) {
         s.mutable_training()->set_precision(static_cast<v1::TrainingConfig::Precision>(9));
       },
       "spec.training.precision", "9"},
      {"NegativeCheckpointEvery",
       [](v1::JobSpec& s) { s.mutable_training()->set_checkpoint_every_steps(-5); },
       "spec.training.checkpoint_every_steps", "got -5"},
      {"NegativeWeightDecay", [](v1::JobSpec& s) { s.mutable_training()->set_weight_decay(-1); },
       "spec.training.weight_decay", "must be >= 0"},
      {"NegativeGradNorm", [](v1::JobSpec& s) { s.mutable_training()->set_max_grad_norm(-2); },
       "spec.training.max_grad_norm", "must be >= 0"},
      {"ZeroBudget", [](v1::JobSpec& s) { s.mutable_budget()->set_usd(0); }, "spec.budget.usd",
       "must be > 0"},
      {"NegativeBudget", [](v1::JobSpec& s) { s.mutable_budget()->set_usd(-3); }, "spec.budget.usd",
       "got -3"},
      {"ThresholdOutOfRange",
       [](v1::JobSpec& s) {
         s.mutable_budget()->set_usd(10);
         s.mutable_budget()->add_thresholds(0);
       },
       "spec.budget.thresholds[0]", "must be in (0, 10]"},
      {"ThresholdsNotIncreasing",
       [](v1::JobSpec& s) {
         s.mutable_budget()->set_usd(10);
         s.mutable_budget()->add_thresholds(0.8);
         s.mutable_budget()->add_thresholds(0.5);
       },
       "spec.budget.thresholds[1]", "strictly increasing"},
      {"UnknownPolicy",
       [](v1::JobSpec& s) { s.mutable_budget()->set_policy(static_cast<v1::Budget::Policy>(7)); },
       "spec.budget.policy", "7"},
      {"PriorityTooHigh", [](v1::JobSpec& s) { s.set_priority(1001); }, "spec.priority",
       "must be in [-1000, 1000], got 1001"},
      {"EmptyLabelKey", [](v1::JobSpec& s) { (*s.mutable_labels())[""] = "x"; }, "spec.labels",
       "must not be empty"},
      {"NegativeInheritedCost",
       [](v1::JobSpec& s) {
         v1::InheritedCost* cost = s.add_inherited_costs();
         cost->set_kind(v1::InheritedCost::DATA);
         cost->set_usd(-5);
         cost->set_source("invoice");
       },
       "spec.inherited_costs[0].usd", "must be >= 0"},
      {"InheritedCostWithoutKind",
       [](v1::JobSpec& s) {
         v1::InheritedCost* cost = s.add_inherited_costs();
         cost->set_usd(5);
         cost->set_source("invoice");
       },
       "spec.inherited_costs[0].kind", "BASE_MODEL_PRETRAINING"},
      {"InheritedCostWithoutSource",
       [](v1::JobSpec& s) {
         v1::InheritedCost* cost = s.add_inherited_costs();
         cost->set_kind(v1::InheritedCost::LABOUR);
         cost->set_usd(5);
       },
       "spec.inherited_costs[0].source", "required"},
      {"RequestIdTooLong", [](v1::JobSpec& s) { s.set_client_request_id(std::string(129, 'r')); },
       "spec.client_request_id", "at most 128"},
      {"NegativeGpus", [](v1::JobSpec& s) { s.set_gpus(-1); }, "spec.gpus", "got -1"},
      {"TooManyAttempts", [](v1::JobSpec& s) { s.set_max_attempts(101); }, "spec.max_attempts",
       "got 101"},
  };
  return *rules;
}

INSTANTIATE_TEST_SUITE_P(OneRowPerRule, ValidateJobSpecRuleTest, ::testing::ValuesIn(Rules()),
                         [](const ::testing::TestParamInfo<RuleCase>& info) {
                           return info.param.rule;
                         });

TEST(ValidateJobSpecTest, AcceptsAValidSpec) {
  EXPECT_OK(ValidateJobSpec(ValidSpec()));
  v1::JobSpec spec = ValidSpec();
  spec.mutable_lora()->set_r(1024);
  spec.mutable_budget()->set_usd(0.01);
  spec.mutable_budget()->add_thresholds(0.5);
  spec.mutable_budget()->add_thresholds(2.0);
  spec.mutable_budget()->set_policy(v1::Budget::ALERT_ONLY);
  for (const char* module :
       {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}) {
    spec.mutable_lora()->add_target_modules(module);
  }
  EXPECT_OK(ValidateJobSpec(spec));
}

TEST(ValidateJobSpecTest, ReportsEveryBadFieldInOneError) {
  v1::JobSpec spec = ValidSpec();
  spec.mutable_lora()->set_r(0);
  spec.mutable_training()->set_learning_rate(-0.1);
  spec.mutable_lora()->add_target_modules("attn");
  spec.mutable_budget()->set_usd(0);
  const absl::Status status = ValidateJobSpec(spec);
  EXPECT_THAT(
      status,
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("spec.lora.r: must be in [1, 1024], got 0"),
                     HasSubstr("spec.training.learning_rate: must be > 0, got -0.1"),
                     HasSubstr("spec.lora.target_modules[0]"), HasSubstr("spec.budget.usd"))));
  // One line per field, separated by "; ".
  EXPECT_EQ(std::count(status.message().begin(), status.message().end(), ';'), 3)
      << status.message();
}

TEST(ValidateJobSpecTest, UnsetRankIsTheDefaultNotAnError) {
  v1::JobSpec spec = ValidSpec();
  spec.mutable_lora()->clear_r();
  EXPECT_OK(ValidateJobSpec(spec));
  EXPECT_EQ(WithDefaults(spec).lora().r(), 16);
}

TEST(WithDefaultsTest, FillsEveryDefaultFromTheSharedTable) {
  const v1::JobSpec filled = WithDefaults(ValidSpec());
  EXPECT_EQ(filled.lora().r(), 16);
  EXPECT_EQ(filled.lora().alpha(), 32);
  EXPECT_DOUBLE_EQ(filled.lora().dropout(), 0.1);
  EXPECT_THAT(filled.lora().target_modules(), ::testing::ElementsAre("q_proj", "v_proj"));
  EXPECT_EQ(filled.training().max_steps(), 100);
  EXPECT_EQ(filled.training().epochs(), 0) << "max_steps was set: epochs stays unset";
  EXPECT_EQ(filled.training().batch_size(), 8);
  EXPECT_EQ(filled.training().grad_accum_steps(), 1);
  EXPECT_DOUBLE_EQ(filled.training().learning_rate(), 2e-4);
  EXPECT_EQ(filled.training().lr_schedule(), v1::TrainingConfig::COSINE);
  EXPECT_EQ(filled.training().seq_len(), 256);
  EXPECT_EQ(filled.training().checkpoint_every_steps(), 50);
  EXPECT_DOUBLE_EQ(filled.training().max_grad_norm(), 1.0);
  EXPECT_EQ(filled.gpus(), 1);
  EXPECT_EQ(filled.max_attempts(), 3);
  EXPECT_FALSE(filled.budget().has_usd());
  EXPECT_TRUE(filled.budget().thresholds().empty()) << "no budget: no thresholds";
  EXPECT_OK(ValidateJobSpec(filled));
}

TEST(WithDefaultsTest, BudgetGetsDefaultThresholdsAndCancelPolicy) {
  v1::JobSpec spec = ValidSpec();
  spec.mutable_training()->clear_max_steps();
  spec.mutable_budget()->set_usd(2.5);
  const v1::JobSpec filled = WithDefaults(spec);
  EXPECT_THAT(filled.budget().thresholds(), ::testing::ElementsAre(0.5, 0.8, 1.0));
  EXPECT_EQ(filled.budget().policy(), v1::Budget::CANCEL);
  EXPECT_EQ(filled.training().epochs(), 1);
}

TEST(ValidateJobInputsTest, AcceptsAModelFolderWithConfigAndWeights) {
  testing::TempDir dir;
  EXPECT_OK(ValidateJobInputs(ValidSpec(MakeJobInputs(dir))));
  v1::JobSpec sharded = ValidSpec(MakeJobInputs(dir));
  std::filesystem::remove(dir.File("model/model.safetensors"));
  dir.Write("model/model.safetensors.index.json", "{}");
  EXPECT_OK(ValidateJobInputs(sharded));
}

TEST(ValidateJobInputsTest, NamesTheMissingModelFolder) {
  testing::TempDir dir;
  v1::JobSpec spec = ValidSpec(MakeJobInputs(dir));
  spec.set_model_path(dir.File("no-such-model"));
  EXPECT_THAT(ValidateJobInputs(spec), StatusIs(absl::StatusCode::kInvalidArgument,
                                                AllOf(HasSubstr("spec.model_path: no such folder"),
                                                      Not(HasSubstr("spec.train_path")))));
}

TEST(ValidateJobInputsTest, NamesAModelFolderWithoutConfigOrWeights) {
  testing::TempDir dir;
  v1::JobSpec spec = ValidSpec(MakeJobInputs(dir));
  std::filesystem::remove(dir.File("model/config.json"));
  std::filesystem::remove(dir.File("model/model.safetensors"));
  EXPECT_THAT(ValidateJobInputs(spec), StatusIs(absl::StatusCode::kInvalidArgument,
                                                AllOf(HasSubstr("no readable config.json"),
                                                      HasSubstr("no *.safetensors file"))));
}

TEST(ValidateJobInputsTest, NamesUnreadableDataFiles) {
  testing::TempDir dir;
  v1::JobSpec spec = ValidSpec(MakeJobInputs(dir));
  spec.set_train_path(dir.File("missing.jsonl"));
  spec.set_valid_path(dir.path());  // a folder is not a data file
  EXPECT_THAT(ValidateJobInputs(spec),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("spec.train_path: not a readable file"),
                             HasSubstr("spec.valid_path: not a readable file"))));
}

}  // namespace
}  // namespace tuneledger
