#include "server/core/job_spec_validator.h"

#include <google/protobuf/unknown_field_set.h>

#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/job_fixtures.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"
#include "tuneledger/v1/job_spec_contract.h"

namespace tuneledger {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::tuneledger::testing::MakeJobInputs;
using ::tuneledger::testing::StatusIs;
using ::tuneledger::testing::ValidSpec;

std::string Repeat(const std::string& text, int times) {
  std::string repeated;
  for (int i = 0; i < times; ++i) repeated += text;
  return repeated;
}

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
      {"NameOf129TwoByteCharacters", [](v1::JobSpec& s) { s.set_name(Repeat("\xc3\xa9", 129)); },
       "spec.name", "must be at most 128 characters, got 129"},
      // Strict UTF-8 as protobuf parses it: an overlong "/" and a UTF-16 surrogate are not.
      {"NameWithAnOverlongEncoding", [](v1::JobSpec& s) { s.set_name("a\xc0\xaf"); }, "spec.name",
       "must be valid UTF-8"},
      {"LabelWithASurrogate",
       [](v1::JobSpec& s) { (*s.mutable_labels())["team"] = "\xed\xa0\x80"; },
       "spec.labels[\"team\"]", "must be valid UTF-8"},
      {"ModelPathTooLong", [](v1::JobSpec& s) { s.set_model_path("/" + std::string(4096, 'm')); },
       "spec.model_path", "must be at most 4096 bytes, got 4097"},
      {"ValidPathTooLong", [](v1::JobSpec& s) { s.set_valid_path(std::string(5000, 'v')); },
       "spec.valid_path", "must be at most 4096 bytes, got 5000"},
      {"TooManyLabels",
       [](v1::JobSpec& s) {
         for (int i = 0; i < 10'000; ++i) (*s.mutable_labels())["k" + std::to_string(i)] = "v";
       },
       "spec.labels", "must have at most 32 labels, got 10000"},
      {"LabelKeyTooLong", [](v1::JobSpec& s) { (*s.mutable_labels())[std::string(65, 'k')] = "v"; },
       "spec.labels", "must be at most 64 characters, got 65"},
      {"LabelValueTooLong",
       [](v1::JobSpec& s) { (*s.mutable_labels())["team"] = std::string(1 << 20, 'v'); },
       "spec.labels[\"team\"]", "must be at most 256 characters, got 1048576"},
      {"TooManyInheritedCosts",
       [](v1::JobSpec& s) {
         for (int i = 0; i < 17; ++i) {
           v1::InheritedCost* cost = s.add_inherited_costs();
           cost->set_kind(v1::InheritedCost::DATA);
           cost->set_source("invoice");
         }
       },
       "spec.inherited_costs", "must have at most 16 entries, got 17"},
      {"InheritedCostSourceTooLong",
       [](v1::JobSpec& s) {
         v1::InheritedCost* cost = s.add_inherited_costs();
         cost->set_kind(v1::InheritedCost::DATA);
         cost->set_source(std::string(257, 's'));
       },
       "spec.inherited_costs[0].source", "must be at most 256 characters, got 257"},
      {"InheritedCostDescriptionTooLong",
       [](v1::JobSpec& s) {
         v1::InheritedCost* cost = s.add_inherited_costs();
         cost->set_kind(v1::InheritedCost::DATA);
         cost->set_source("invoice");
         cost->set_description(std::string(1025, 'd'));
       },
       "spec.inherited_costs[0].description", "must be at most 1024 characters, got 1025"},
      {"TooManyThresholds",
       [](v1::JobSpec& s) {
         s.mutable_budget()->set_usd(10);
         for (int i = 1; i <= 17; ++i) s.mutable_budget()->add_thresholds(0.1 * i);
       },
       "spec.budget.thresholds", "must have at most 16 thresholds, got 17"},
      {"SamplePromptTooLong",
       [](v1::JobSpec& s) { s.mutable_training()->set_sample_prompt(std::string(3 << 20, 'p')); },
       "spec.training.sample_prompt", "must be at most 4096 bytes, got 3145728"},
      {"SampleMaxTokensPastTheContext",
       [](v1::JobSpec& s) {
         s.mutable_training()->set_sample_prompt("Once upon a time");
         s.mutable_training()->set_seq_len(64);
         s.mutable_training()->set_sample_max_tokens(63);
       },
       "spec.training.sample_max_tokens", "in spec.training.seq_len (64): at most 62, got 63"},
      {"DefaultSampleMaxTokensPastTheContext",
       [](v1::JobSpec& s) {
         s.mutable_training()->set_sample_prompt("Once upon a time");
         s.mutable_training()->set_seq_len(32);
       },
       "spec.training.sample_max_tokens", "(32): at most 30, got 64"},
      {"SpecTooLargeWithUnknownFields",
       [](v1::JobSpec& s) {
         s.GetReflection()->MutableUnknownFields(&s)->AddLengthDelimited(5000,
                                                                         std::string(300'000, 'u'));
       },
       "spec", "must be at most 262144 bytes as protobuf"},
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

TEST(ValidateJobSpecTest, TextLimitsCountCharactersNotBytes) {
  v1::JobSpec spec = ValidSpec();
  spec.set_name(Repeat("\xc3\xa9", 128));  // 256 bytes
  (*spec.mutable_labels())[Repeat("\xe2\x82\xac", 64)] = Repeat("\xf0\x9f\x98\x80", 256);
  EXPECT_OK(ValidateJobSpec(spec));
}

TEST(ValidateJobSpecTest, ASamplePromptFitsWithTheNewTokensInTheContext) {
  v1::JobSpec spec = ValidSpec();
  spec.mutable_training()->set_sample_prompt(std::string(4096, 'p'));
  spec.mutable_training()->set_seq_len(64);
  spec.mutable_training()->set_sample_max_tokens(62);
  EXPECT_OK(ValidateJobSpec(spec));
  v1::JobSpec no_prompt = ValidSpec();
  no_prompt.mutable_training()->set_seq_len(32);
  // No prompt, no sample: the default 64 new tokens do not have to fit.
  EXPECT_OK(ValidateJobSpec(no_prompt));
}

// Every text at its limit in 4-byte characters, every list full: the cap on the whole spec
// (kSpecMaxBytes) must never refuse a spec that keeps to the field limits.
TEST(ValidateJobSpecTest, TheLargestSpecWithinEveryFieldLimitIsUnderTheSpecByteCap) {
  const std::string wide = "\xf0\x9f\x98\x80";  // one character, four bytes
  v1::JobSpec spec = ValidSpec();
  spec.set_name(Repeat(wide, spec::kNameMaxChars));
  spec.set_model_path(std::string(spec::kPathMaxBytes, 'm'));
  spec.set_train_path(std::string(spec::kPathMaxBytes, 't'));
  spec.set_valid_path(std::string(spec::kPathMaxBytes, 'v'));
  for (std::string_view module : spec::kAllTargetModules) {
    spec.mutable_lora()->add_target_modules(std::string(module));
  }
  spec.mutable_training()->set_seq_len(spec::kSeqLenMax);
  spec.mutable_training()->set_sample_prompt(Repeat(wide, spec::kSamplePromptMaxBytes / 4));
  spec.mutable_budget()->set_usd(1);
  for (int i = 1; i <= spec::kBudgetThresholdsMax; ++i) {
    spec.mutable_budget()->add_thresholds(0.5 * i);
  }
  for (int i = 0; i < spec::kLabelsMax; ++i) {
    const std::string key = std::to_string(i) + Repeat(wide, spec::kLabelKeyMaxChars - 2);
    (*spec.mutable_labels())[key] = Repeat(wide, spec::kLabelValueMaxChars);
  }
  for (int i = 0; i < spec::kInheritedCostsMax; ++i) {
    v1::InheritedCost* cost = spec.add_inherited_costs();
    cost->set_kind(v1::InheritedCost::OTHER);
    cost->set_usd(1e12);
    cost->set_source(Repeat(wide, spec::kInheritedCostSourceMaxChars));
    cost->set_description(Repeat(wide, spec::kInheritedCostDescriptionMaxChars));
  }
  spec.set_client_request_id(Repeat(wide, spec::kClientRequestIdMaxChars));
  EXPECT_OK(ValidateJobSpec(spec));
  EXPECT_LE(spec.ByteSizeLong(), static_cast<size_t>(spec::kSpecMaxBytes));
}

TEST(ValidateJobSpecTest, AnErrorListsSixteenProblemsAndCountsTheRest) {
  v1::JobSpec spec = ValidSpec();
  for (int i = 0; i < 1000; ++i) {
    spec.mutable_lora()->add_target_modules("module_" + std::to_string(i));
  }
  const absl::Status status = ValidateJobSpec(spec);
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument,
                               AllOf(HasSubstr("spec.lora.target_modules[15]: unknown module"),
                                     Not(HasSubstr("spec.lora.target_modules[16]")),
                                     HasSubstr("; and 984 more problems"))));
}

TEST(ValidateJobSpecTest, AnErrorQuotesAtMostTheHeadOfALargeValue) {
  v1::JobSpec spec = ValidSpec();
  spec.mutable_lora()->add_target_modules(std::string(1 << 20, 'q'));
  const absl::Status status = ValidateJobSpec(spec);
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument,
                               HasSubstr("spec.lora.target_modules[0]: unknown module \"qqq")));
  EXPECT_LT(status.message().size(), 1024u);
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

// The cached check gives ValidateJobInputs' verdict, word for word, in every case above.
TEST(ValidateJobInputsTest, TheCachedCheckGivesTheSameVerdict) {
  testing::TempDir dir;
  const v1::JobSpec valid = ValidSpec(MakeJobInputs(dir));
  v1::JobSpec no_folder = valid;
  no_folder.set_model_path(dir.File("no-such-model"));
  v1::JobSpec bad_data = valid;
  bad_data.set_train_path(dir.File("missing.jsonl"));
  bad_data.set_valid_path(dir.path());
  v1::JobSpec with_valid = valid;
  with_valid.set_valid_path(valid.train_path());
  dir.Write("empty-model/README.md", "no config, no weights");
  v1::JobSpec empty_folder = valid;
  empty_folder.set_model_path(dir.File("empty-model"));
  InputCheckCache cache;
  for (const v1::JobSpec& spec : {valid, no_folder, bad_data, with_valid, empty_folder}) {
    SCOPED_TRACE(spec.ShortDebugString());
    const absl::Status expected = ValidateJobInputs(spec);
    for (int again = 0; again < 2; ++again) {  // a miss, then a hit
      const absl::Status cached = ValidateJobInputs(spec, TakeInputStamps(spec), cache);
      EXPECT_EQ(cached.code(), expected.code());
      EXPECT_EQ(cached.message(), expected.message());
    }
  }
}

// An unchanged folder or file is looked into once; a change to it is seen on the next submit.
TEST(ValidateJobInputsTest, TheCachedCheckLooksAgainOnlyAtWhatChanged) {
  testing::TempDir dir;
  const v1::JobSpec spec = ValidSpec(MakeJobInputs(dir));
  InputCheckCache cache;
  auto check = [&] { return ValidateJobInputs(spec, TakeInputStamps(spec), cache); };
  EXPECT_OK(check());
  EXPECT_OK(check());
  EXPECT_EQ(cache.model_folders.misses(), 1);
  EXPECT_EQ(cache.model_folders.hits(), 1);
  EXPECT_EQ(cache.data_files.misses(), 1);
  EXPECT_EQ(cache.data_files.hits(), 1);

  std::filesystem::remove(dir.File("model/config.json"));
  EXPECT_THAT(check(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no readable config.json")));
  EXPECT_EQ(cache.model_folders.misses(), 2);
  EXPECT_EQ(cache.data_files.hits(), 2) << "the train file did not change";
  dir.Write("model/config.json", "{}");
  EXPECT_OK(check());

  std::filesystem::remove(spec.train_path());
  EXPECT_THAT(check(), StatusIs(absl::StatusCode::kInvalidArgument,
                                HasSubstr("spec.train_path: not a readable file")));
  dir.Write("train.jsonl", "{\"text\":\"back\"}\n");
  EXPECT_OK(check());
  // Still there, but no longer a file it can read.
  std::filesystem::remove(spec.train_path());
  std::filesystem::create_directory(spec.train_path());
  EXPECT_THAT(check(), StatusIs(absl::StatusCode::kInvalidArgument,
                                HasSubstr("spec.train_path: not a readable file")));
}

}  // namespace
}  // namespace tuneledger
