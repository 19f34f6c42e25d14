// Job spec parsing: both JSON spellings, int64 as strings, enums, defaults, unknown fields.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "lm/trainer_error.h"
#include "tuneledger/v1/job_spec_contract.h"
#include "worker/trainer/spec/job_spec.h"

namespace tuneledger::train {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

json Minimal() { return {{"model_path", "/m"}, {"train_path", "/t.jsonl"}}; }

std::string ErrorOf(const json& spec) {
  try {
    ParseJobSpec(spec);
  } catch (const TrainError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(JobSpecTest, SnakeCaseFieldsAreRead) {
  json spec = Minimal();
  spec["valid_path"] = "/v.jsonl";
  spec["lora"] = {
      {"r", 8}, {"alpha", 16}, {"dropout", 0.0}, {"target_modules", {"q_proj", "o_proj"}}};
  spec["training"] = {{"max_steps", 30},
                      {"batch_size", 4},
                      {"grad_accum_steps", 2},
                      {"learning_rate", 1e-3},
                      {"warmup_steps", 5},
                      {"lr_schedule", "LINEAR"},
                      {"seq_len", 64},
                      {"seed", 42},
                      {"precision", "BF16"},
                      {"gradient_checkpointing", true},
                      {"checkpoint_every_steps", 10},
                      {"eval_every_steps", 5},
                      {"weight_decay", 0.01},
                      {"max_grad_norm", 0.5},
                      {"save_merged_model", true},
                      {"sample_prompt", "hi"},
                      {"sample_max_tokens", 9}};
  const TrainJobSpec parsed = ParseJobSpec(spec);
  EXPECT_EQ(parsed.valid_path, "/v.jsonl");
  EXPECT_EQ(parsed.lora_r, 8);
  EXPECT_EQ(parsed.lora_alpha, 16);
  EXPECT_EQ(parsed.lora_dropout, 0.0);
  EXPECT_THAT(parsed.target_modules, ElementsAre("q_proj", "o_proj"));
  EXPECT_EQ(parsed.max_steps, 30);
  EXPECT_EQ(parsed.epochs, 0);
  EXPECT_EQ(parsed.batch_size, 4);
  EXPECT_EQ(parsed.grad_accum_steps, 2);
  EXPECT_EQ(parsed.learning_rate, 1e-3);
  EXPECT_EQ(parsed.warmup_steps, 5);
  EXPECT_EQ(parsed.lr_schedule, LrScheduleKind::kLinear);
  EXPECT_EQ(parsed.seq_len, 64);
  EXPECT_EQ(parsed.seed, 42);
  EXPECT_EQ(parsed.precision, Precision::kBf16);
  EXPECT_TRUE(parsed.gradient_checkpointing);
  EXPECT_EQ(parsed.checkpoint_every_steps, 10);
  EXPECT_EQ(parsed.eval_every_steps, 5);
  EXPECT_EQ(parsed.weight_decay, 0.01);
  EXPECT_EQ(parsed.max_grad_norm, 0.5);
  EXPECT_TRUE(parsed.save_merged_model);
  EXPECT_EQ(parsed.sample_prompt, "hi");
  EXPECT_EQ(parsed.sample_max_tokens, 9);
}

TEST(JobSpecTest, LowerCamelCaseFieldsAreRead) {
  json spec = {{"modelPath", "/m"}, {"trainPath", "/t.jsonl"}, {"validPath", "/v.jsonl"}};
  spec["lora"] = {{"targetModules", {"k_proj"}}};
  spec["training"] = {{"maxSteps", 7},
                      {"batchSize", 3},
                      {"gradAccumSteps", 2},
                      {"learningRate", 0.01},
                      {"lrSchedule", "CONSTANT"},
                      {"seqLen", 32},
                      {"checkpointEverySteps", 4},
                      {"maxGradNorm", 0},
                      {"saveMergedModel", true}};
  const TrainJobSpec parsed = ParseJobSpec(spec);
  EXPECT_EQ(parsed.model_path, "/m");
  EXPECT_EQ(parsed.valid_path, "/v.jsonl");
  EXPECT_THAT(parsed.target_modules, ElementsAre("k_proj"));
  EXPECT_EQ(parsed.max_steps, 7);
  EXPECT_EQ(parsed.batch_size, 3);
  EXPECT_EQ(parsed.grad_accum_steps, 2);
  EXPECT_EQ(parsed.learning_rate, 0.01);
  EXPECT_EQ(parsed.lr_schedule, LrScheduleKind::kConstant);
  EXPECT_EQ(parsed.seq_len, 32);
  EXPECT_EQ(parsed.checkpoint_every_steps, 4);
  EXPECT_EQ(parsed.max_grad_norm, 0.0);  // explicit 0 = clipping off, not the default
  EXPECT_TRUE(parsed.save_merged_model);
}

TEST(JobSpecTest, IntegersMayBeStringsAndEnumsNumbers) {
  json spec = Minimal();
  spec["training"] = {{"max_steps", "12"}, {"seed", "-3"}, {"precision", 3}, {"lr_schedule", 2}};
  spec["priority"] = "5";
  const TrainJobSpec parsed = ParseJobSpec(spec);
  EXPECT_EQ(parsed.max_steps, 12);
  EXPECT_EQ(parsed.seed, -3);
  EXPECT_EQ(parsed.precision, Precision::kFp16);
  EXPECT_EQ(parsed.lr_schedule, LrScheduleKind::kLinear);
}

TEST(JobSpecTest, DefaultsComeFromTheContract) {
  const TrainJobSpec parsed = ParseJobSpec(Minimal());
  namespace d = ::tuneledger::spec;
  EXPECT_EQ(parsed.lora_r, d::kLoraR);
  EXPECT_EQ(parsed.lora_alpha, d::kLoraAlpha);
  EXPECT_EQ(parsed.lora_dropout, d::kLoraDropout);
  EXPECT_THAT(parsed.target_modules, ElementsAre("q_proj", "v_proj"));
  EXPECT_EQ(parsed.epochs, d::kEpochs);
  EXPECT_EQ(parsed.max_steps, 0);
  EXPECT_EQ(parsed.batch_size, d::kBatchSize);
  EXPECT_EQ(parsed.grad_accum_steps, d::kGradAccumSteps);
  EXPECT_EQ(parsed.learning_rate, d::kLearningRate);
  EXPECT_EQ(parsed.seq_len, d::kSeqLen);
  EXPECT_EQ(parsed.checkpoint_every_steps, d::kCheckpointEverySteps);
  EXPECT_EQ(parsed.eval_every_steps, d::kEvalEverySteps);
  EXPECT_EQ(parsed.weight_decay, d::kWeightDecay);
  EXPECT_EQ(parsed.max_grad_norm, d::kMaxGradNorm);
  EXPECT_EQ(parsed.sample_max_tokens, d::kSampleMaxTokens);
  EXPECT_EQ(parsed.lr_schedule, LrScheduleKind::kCosine);
  EXPECT_EQ(parsed.precision, Precision::kUnspecified);
}

TEST(JobSpecTest, ServerOnlyFieldsAreAccepted) {
  json spec = Minimal();
  spec["name"] = "demo";
  spec["budget"] = {{"usd", 1.5}, {"thresholds", {0.5, "0.9"}}, {"policy", "ALERT_ONLY"}};
  spec["labels"] = {{"team", "nlp"}};
  spec["inheritedCosts"] = {{{"kind", "BASE_MODEL_PRETRAINING"}, {"usd", 5}, {"source", "paper"}}};
  spec["client_request_id"] = "abc";
  spec["gpus"] = 1;
  spec["maxAttempts"] = "3";
  spec["priority"] = nullptr;  // null = unset
  EXPECT_EQ(ParseJobSpec(spec).name, "demo");
}

TEST(JobSpecTest, UnknownFieldsAreNamed) {
  json spec = Minimal();
  spec["trainig"] = {};
  EXPECT_THAT(ErrorOf(spec), HasSubstr("trainig: unknown field"));

  spec = Minimal();
  spec["training"] = {{"max_stepz", 3}};
  EXPECT_THAT(ErrorOf(spec), HasSubstr("training.max_stepz: unknown field"));

  spec = Minimal();
  spec["lora"] = {{"rank", 3}};
  EXPECT_THAT(ErrorOf(spec), HasSubstr("lora.rank: unknown field"));

  spec = Minimal();
  spec["inherited_costs"] = {{{"kind", "DATA"}, {"dollars", 3}}};
  EXPECT_THAT(ErrorOf(spec), HasSubstr("inherited_costs[0].dollars: unknown field"));
}

TEST(JobSpecTest, BadValuesAreNamedAllAtOnce) {
  json spec = Minimal();
  spec["lora"] = {{"r", 0}, {"dropout", 1.5}, {"target_modules", {"q_proj", "qkv"}}};
  spec["training"] = {{"epochs", 2}, {"max_steps", 3}, {"learning_rate", -1}};
  const std::string error = ErrorOf(spec);
  EXPECT_THAT(error, HasSubstr("lora.r: must be in [1, 1024], got 0"));
  ParseJobSpec(Minimal());  // sanity: the minimal spec is fine
  spec["lora"].erase("r");
  const std::string second = ErrorOf(spec);
  EXPECT_THAT(second, HasSubstr("lora.dropout"));
  EXPECT_THAT(second, HasSubstr("unknown module \"qkv\""));
  EXPECT_THAT(second, HasSubstr("spec.training.max_steps: must not be set together with "
                                "spec.training.epochs"));
  EXPECT_THAT(second, HasSubstr("training.learning_rate: must be > 0"));
}

// Rules the server had alone before the one contract: the trainer now refuses them too.
TEST(JobSpecTest, ServerRulesHoldInTheTrainer) {
  json spec = Minimal();
  spec["name"] = std::string(129, 'n');
  spec["gpus"] = 65;
  spec["training"] = {{"batch_size", 70000}, {"epochs", 10001}, {"seq_len", 1}};
  const std::string error = ErrorOf(spec);
  EXPECT_THAT(error, HasSubstr("spec.name: must be at most 128 characters, got 129"));
  EXPECT_THAT(error, HasSubstr("spec.gpus: must be in [0, 64] (0 = default), got 65"));
  EXPECT_THAT(error, HasSubstr("spec.training.batch_size: must be in [0, 65536]"));
  EXPECT_THAT(error, HasSubstr("spec.training.epochs: must be in [0, 10000]"));
  EXPECT_THAT(error, HasSubstr("spec.training.seq_len: must be in [2, 131072]"));
}

TEST(JobSpecTest, WrongTypesAndDuplicateSpellings) {
  json spec = Minimal();
  spec["training"] = {{"batch_size", "eight"}};
  EXPECT_THAT(ErrorOf(spec), HasSubstr("spec.training.batch_size: must be a 32-bit integer"));

  spec = Minimal();
  spec["training"] = {{"precision", "FP8"}};
  EXPECT_THAT(ErrorOf(spec), HasSubstr("training.precision: must be one of"));

  spec = Minimal();
  spec["training"] = {{"max_steps", 3}, {"maxSteps", 4}};
  EXPECT_THAT(ErrorOf(spec), HasSubstr("training.max_steps: given twice"));

  EXPECT_THAT(ErrorOf(json{{"train_path", "/t"}}), HasSubstr("model_path: required"));
  EXPECT_THAT(ErrorOf(json::array()), HasSubstr("must be a JSON object"));
}

}  // namespace
}  // namespace tuneledger::train
