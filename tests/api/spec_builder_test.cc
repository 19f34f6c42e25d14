#include "client/spec_builder.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace tuneledger::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::tuneledger::testing::StatusIs;
using ::tuneledger::testing::TempDir;
using tuneledger::v1::Budget;
using tuneledger::v1::InheritedCost;
using tuneledger::v1::JobSpec;
using tuneledger::v1::TrainingConfig;

FlagValues Flags(const std::vector<std::pair<std::string, std::string>>& values) {
  FlagValues flags;
  for (const auto& [name, value] : values) flags.Add(name, value);
  return flags;
}

TEST(AbsolutePathTest, ResolvesRelativeAndKeepsAbsoluteAndEmpty) {
  EXPECT_EQ(AbsolutePath("data/train.jsonl", "/home/u"), "/home/u/data/train.jsonl");
  EXPECT_EQ(AbsolutePath("./m/../model", "/home/u"), "/home/u/model");
  EXPECT_EQ(AbsolutePath("/abs/model", "/home/u"), "/abs/model");
  EXPECT_EQ(AbsolutePath("", "/home/u"), "");
}

TEST(BuildJobSpecTest, EveryFlagSetsItsField) {
  absl::StatusOr<JobSpec> spec =
      BuildJobSpec(Flags({{"model", "models/tiny"},
                          {"train", "/data/train.jsonl"},
                          {"valid", "valid.jsonl"},
                          {"name", "demo run"},
                          {"lora-r", "8"},
                          {"lora-alpha", "16"},
                          {"lora-dropout", "0"},
                          {"target-modules", "q_proj, k_proj,,v_proj"},
                          {"quantize-base", "NF4"},
                          {"max-steps", "100"},
                          {"batch-size", "4"},
                          {"grad-accum", "2"},
                          {"lr", "3e-4"},
                          {"warmup-steps", "10"},
                          {"lr-schedule", "linear"},
                          {"weight-decay", "0.01"},
                          {"max-grad-norm", "0"},
                          {"seq-len", "128"},
                          {"seed", "7"},
                          {"precision", "BF16"},
                          {"grad-checkpointing", "true"},
                          {"checkpoint-every", "25"},
                          {"eval-every", "20"},
                          {"early-stop-patience", "3"},
                          {"early-stop-min-delta", "0.01"},
                          {"divergence-factor", "4"},
                          {"budget-usd", "5"},
                          {"budget-thresholds", "0.25,0.5"},
                          {"budget-policy", "alert-only"},
                          {"priority", "-3"},
                          {"gpus", "2"},
                          {"max-attempts", "5"},
                          {"label", "team=nlp"},
                          {"label", "ticket=ML-1=b"},
                          {"inherited-cost", "pretraining=1200000:Llama 2 paper: table 2"},
                          {"inherited-cost", "labour=300"},
                          {"request-id", "req-1"}}),
                   "/home/u");
  ASSERT_OK(spec);
  EXPECT_EQ(spec->model_path(), "/home/u/models/tiny");
  EXPECT_EQ(spec->train_path(), "/data/train.jsonl");
  EXPECT_EQ(spec->valid_path(), "/home/u/valid.jsonl");
  EXPECT_EQ(spec->name(), "demo run");
  EXPECT_TRUE(spec->lora().has_r());
  EXPECT_EQ(spec->lora().r(), 8);
  EXPECT_EQ(spec->lora().alpha(), 16);
  EXPECT_TRUE(spec->lora().has_dropout());  // an explicit 0 is kept, not the default 0.1
  EXPECT_EQ(spec->lora().dropout(), 0);
  EXPECT_THAT(spec->lora().target_modules(), ElementsAre("q_proj", "k_proj", "v_proj"));
  EXPECT_EQ(spec->lora().quantize_base(), tuneledger::v1::LoraConfig::NF4);
  const TrainingConfig& t = spec->training();
  EXPECT_EQ(t.max_steps(), 100);
  EXPECT_EQ(t.epochs(), 0);
  EXPECT_EQ(t.batch_size(), 4);
  EXPECT_EQ(t.grad_accum_steps(), 2);
  EXPECT_DOUBLE_EQ(t.learning_rate(), 3e-4);
  EXPECT_EQ(t.warmup_steps(), 10);
  EXPECT_EQ(t.lr_schedule(), TrainingConfig::LINEAR);
  EXPECT_DOUBLE_EQ(t.weight_decay(), 0.01);
  EXPECT_TRUE(t.has_max_grad_norm());
  EXPECT_EQ(t.max_grad_norm(), 0);
  EXPECT_EQ(t.seq_len(), 128);
  EXPECT_EQ(t.seed(), 7);
  EXPECT_EQ(t.precision(), TrainingConfig::BF16);
  EXPECT_TRUE(t.gradient_checkpointing());
  EXPECT_EQ(t.checkpoint_every_steps(), 25);
  EXPECT_EQ(t.eval_every_steps(), 20);
  EXPECT_EQ(t.early_stop().patience_evals(), 3);
  EXPECT_DOUBLE_EQ(t.early_stop().min_delta(), 0.01);
  EXPECT_DOUBLE_EQ(t.early_stop().divergence_factor(), 4);
  EXPECT_TRUE(spec->budget().has_usd());
  EXPECT_EQ(spec->budget().usd(), 5);
  EXPECT_THAT(spec->budget().thresholds(), ElementsAre(0.25, 0.5));
  EXPECT_EQ(spec->budget().policy(), Budget::ALERT_ONLY);
  EXPECT_EQ(spec->priority(), -3);
  EXPECT_EQ(spec->gpus(), 2);
  EXPECT_EQ(spec->max_attempts(), 5);
  EXPECT_EQ(spec->labels().at("team"), "nlp");
  EXPECT_EQ(spec->labels().at("ticket"), "ML-1=b");
  ASSERT_EQ(spec->inherited_costs_size(), 2);
  EXPECT_EQ(spec->inherited_costs(0).kind(), InheritedCost::BASE_MODEL_PRETRAINING);
  EXPECT_EQ(spec->inherited_costs(0).usd(), 1200000);
  EXPECT_EQ(spec->inherited_costs(0).source(), "Llama 2 paper: table 2");
  EXPECT_EQ(spec->inherited_costs(1).kind(), InheritedCost::LABOUR);
  EXPECT_EQ(spec->inherited_costs(1).source(), "");
  EXPECT_EQ(spec->client_request_id(), "req-1");
}

TEST(BuildJobSpecTest, UnsetFlagsLeaveFieldsAtTheirDefaults) {
  absl::StatusOr<JobSpec> spec =
      BuildJobSpec(Flags({{"model", "/m"}, {"train", "/t.jsonl"}}), "/cwd");
  ASSERT_OK(spec);
  JobSpec expected;
  expected.set_model_path("/m");
  expected.set_train_path("/t.jsonl");
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*spec, expected))
      << "expected: " << expected.ShortDebugString() << "\nactual: " << spec->ShortDebugString();
}

TEST(BuildJobSpecTest, OutOfRangeValuesPassThroughForTheServerToJudge) {
  absl::StatusOr<JobSpec> spec =
      BuildJobSpec(Flags({{"lr", "-1"}, {"lora-r", "0"}, {"target-modules", "q_proj,wq"}}), "/cwd");
  ASSERT_OK(spec);
  EXPECT_EQ(spec->training().learning_rate(), -1);
  EXPECT_TRUE(spec->lora().has_r());
  EXPECT_EQ(spec->lora().r(), 0);
  EXPECT_THAT(spec->lora().target_modules(), ElementsAre("q_proj", "wq"));
}

// Each --quantize-base name, any case, is its LoraConfig scheme.
TEST(BuildJobSpecTest, QuantizeBaseNamesEachScheme) {
  using tuneledger::v1::LoraConfig;
  for (const auto& [name, scheme] :
       std::vector<std::pair<std::string, LoraConfig::QuantizeBase>>{{"none", LoraConfig::NONE},
                                                                     {"nf4", LoraConfig::NF4},
                                                                     {"NF4-DQ", LoraConfig::NF4_DQ},
                                                                     {"int8", LoraConfig::INT8}}) {
    SCOPED_TRACE(name);
    absl::StatusOr<JobSpec> spec = BuildJobSpec(Flags({{"quantize-base", name}}), "/cwd");
    ASSERT_OK(spec);
    EXPECT_EQ(spec->lora().quantize_base(), scheme);
  }
}

struct BadFlagCase {
  std::string name;  // the last part of the test name
  std::vector<std::pair<std::string, std::string>> flags;
  std::string message_part;
};

class BadFlagTest : public ::testing::TestWithParam<BadFlagCase> {};

TEST_P(BadFlagTest, IsInvalidArgumentNamingTheFlag) {
  EXPECT_THAT(BuildJobSpec(Flags(GetParam().flags), "/cwd"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(GetParam().message_part)));
}

INSTANTIATE_TEST_SUITE_P(
    Cases, BadFlagTest,
    ::testing::Values(
        BadFlagCase{"LrNotANumber", {{"lr", "fast"}}, "--lr: must be a number, got 'fast'"},
        BadFlagCase{"LoraRNotAnInteger", {{"lora-r", "1.5"}}, "--lora-r: must be an integer"},
        BadFlagCase{"SeedOutOfIntRange", {{"seed", "99999999999"}}, "--seed: must be an integer"},
        BadFlagCase{
            "UnknownPrecision", {{"precision", "int8"}}, "--precision: must be fp32, bf16 or fp16"},
        BadFlagCase{"UnknownSchedule", {{"lr-schedule", "step"}}, "--lr-schedule"},
        BadFlagCase{"UnknownQuantizeBase",
                    {{"quantize-base", "fp8"}},
                    "--quantize-base: must be none, nf4, nf4-dq or int8, got 'fp8'"},
        BadFlagCase{"UnknownBudgetPolicy", {{"budget-policy", "ignore"}}, "--budget-policy"},
        BadFlagCase{"ThresholdNotANumber",
                    {{"budget-thresholds", "0.5,x"}},
                    "--budget-thresholds: must be a number"},
        BadFlagCase{"LabelWithoutKey", {{"label", "=v"}}, "--label: must be KEY=VALUE"},
        BadFlagCase{"LabelWithoutValue", {{"label", "novalue"}}, "--label: must be KEY=VALUE"},
        BadFlagCase{
            "UnknownInheritedCostKind", {{"inherited-cost", "gpu=3"}}, "KIND must be pretraining"},
        BadFlagCase{"InheritedCostUsdNotANumber",
                    {{"inherited-cost", "data=lots:me"}},
                    "USD must be a number"},
        BadFlagCase{
            "InheritedCostWithoutUsd", {{"inherited-cost", "data"}}, "must be KIND=USD:SOURCE"},
        BadFlagCase{"EpochsAndMaxSteps",
                    {{"epochs", "1"}, {"max-steps", "5"}},
                    "--epochs and --max-steps"}),
    [](const ::testing::TestParamInfo<BadFlagCase>& info) { return info.param.name; });

TEST(BuildJobSpecTest, SpecFileIsReadAndFlagsOverrideIt) {
  TempDir dir;
  const std::string spec_file = dir.Write("specs/job.json", R"({
    "name": "from file",
    "model_path": "../models/tiny",
    "train_path": "/abs/train.jsonl",
    "lora": {"r": 4, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]},
    "training": {"epochs": 3, "learning_rate": 0.001, "precision": "FP16"},
    "budget": {"usd": 2.5},
    "labels": {"team": "a", "keep": "yes"},
    "inherited_costs": [{"kind": "DATA", "usd": 10, "source": "invoice 7"}],
    "priority": 4
  })");
  absl::StatusOr<JobSpec> spec = BuildJobSpec(Flags({{"spec", spec_file},
                                                     {"lora-r", "32"},
                                                     {"target-modules", "gate_proj"},
                                                     {"max-steps", "9"},
                                                     {"label", "team=b"},
                                                     {"inherited-cost", "other=1:estimate"}}),
                                              "/elsewhere");
  ASSERT_OK(spec);
  EXPECT_EQ(spec->name(), "from file");
  // Relative paths of the file are resolved against the file's folder.
  EXPECT_EQ(spec->model_path(), dir.path() + "/models/tiny");
  EXPECT_EQ(spec->train_path(), "/abs/train.jsonl");
  EXPECT_EQ(spec->lora().r(), 32);
  EXPECT_THAT(spec->lora().target_modules(), ElementsAre("gate_proj"));
  // --max-steps replaces the file's epochs: never both.
  EXPECT_EQ(spec->training().max_steps(), 9);
  EXPECT_EQ(spec->training().epochs(), 0);
  EXPECT_DOUBLE_EQ(spec->training().learning_rate(), 0.001);
  EXPECT_EQ(spec->training().precision(), TrainingConfig::FP16);
  EXPECT_EQ(spec->budget().usd(), 2.5);
  EXPECT_EQ(spec->labels().at("team"), "b");
  EXPECT_EQ(spec->labels().at("keep"), "yes");
  ASSERT_EQ(spec->inherited_costs_size(), 2);
  EXPECT_EQ(spec->inherited_costs(0).source(), "invoice 7");
  EXPECT_EQ(spec->inherited_costs(1).kind(), InheritedCost::OTHER);
  EXPECT_EQ(spec->priority(), 4);
}

TEST(BuildJobSpecTest, RelativeSpecFileIsFoundFromTheWorkingDirectory) {
  TempDir dir;
  dir.Write("job.json", R"({"name": "x"})");
  absl::StatusOr<JobSpec> spec = BuildJobSpec(Flags({{"spec", "job.json"}}), dir.path());
  ASSERT_OK(spec);
  EXPECT_EQ(spec->name(), "x");
}

TEST(BuildJobSpecTest, SpecFileErrorsAreUsageErrorsNamingTheFile) {
  TempDir dir;
  // A file the caller named and tunectl cannot read is a bad flag value (exit 2), not a
  // NOT_FOUND that reads as if a server had answered.
  EXPECT_THAT(BuildJobSpec(Flags({{"spec", dir.path() + "/missing.json"}}), "/"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--spec: cannot read " + dir.path() +
                                 "/missing.json (No such file or directory)")));
  const std::string unknown_field = dir.Write("bad.json", R"({"learning_rate": 1})");
  EXPECT_THAT(BuildJobSpec(Flags({{"spec", unknown_field}}), "/"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("learning_rate")));
  const std::string not_json = dir.Write("bad2.json", "{nope");
  EXPECT_THAT(BuildJobSpec(Flags({{"spec", not_json}}), "/"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bad2.json")));
}

TEST(CheckSubmitHasInputsTest, NamesTheMissingFlags) {
  EXPECT_THAT(CheckSubmitHasInputs(JobSpec()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("missing --model DIR and --train FILE (or a --spec FILE")));
  JobSpec spec;
  spec.set_model_path("/m");
  EXPECT_THAT(CheckSubmitHasInputs(spec),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("missing --train FILE (or")));
  spec.set_train_path("/t.jsonl");
  EXPECT_OK(CheckSubmitHasInputs(spec));
}

}  // namespace
}  // namespace tuneledger::client
