// tuneledger-train's outputs against the real libraries (reference/hf_reference.py: PyPI's
// transformers and PEFT in the project's Python environment):
//   - the adapter it writes loads with PeftModel.from_pretrained and gives the trainer's own
//     final eval loss;
//   - the merged model it writes loads in transformers and computes what base + adapter does;
//   - an adapter PEFT wrote starts a job (--init-adapter) at PEFT's loss for it.
// Validation data is pre-tokenized, so both sides score exactly the same tokens.
//
// Shape legend: B batch, T tokens, V vocab.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "lm/data/byte_tokenizer.h"
#include "tests/testing/temp_dir.h"
#include "tests/trainer/recipe_test_util.h"
#include "worker/trainer/model/safetensors_reader.h"
#include "worker/trainer/model/safetensors_writer.h"

namespace tuneledger::train {
namespace {

using ::testing::HasSubstr;
using testing::RunProcess;
using testing::TrainerBinary;
using testing::TrainerRun;
using testing::WriteTextFile;
using ::tuneledger::testing::TempDir;

// Both sides compute the loss in fp32; only summation order and padding differ.
constexpr double kLossTolerance = 1e-4;

// The validation set pre-tokenized with the byte tokenizer: <BOS> prompt completion <EOS>, loss
// on completion and EOS, as jsonl_dataset.h tokenizes {"prompt", "completion"}.
std::string PreTokenizedValidation(int count) {
  const ByteTokenizer tokenizer;
  std::istringstream lines(testing::TinyPromptCompletionData(count, 64));
  std::string data;
  for (std::string line; std::getline(lines, line);) {
    const nlohmann::json record = nlohmann::json::parse(line);
    std::vector<int64_t> ids = {tokenizer.bos_id()};
    const std::vector<int64_t> prompt = tokenizer.Encode(record["prompt"]);
    const std::vector<int64_t> completion = tokenizer.Encode(record["completion"]);
    ids.insert(ids.end(), prompt.begin(), prompt.end());
    std::vector<int64_t> labels(ids.size(), -100);
    ids.insert(ids.end(), completion.begin(), completion.end());
    labels.insert(labels.end(), completion.begin(), completion.end());
    ids.push_back(tokenizer.eos_id());
    labels.push_back(tokenizer.eos_id());
    data += nlohmann::json{{"input_ids", ids}, {"labels", labels}}.dump() + "\n";
  }
  return data;
}

class PeftReferenceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::MakeTinyModel(dir_.File("model"));
    WriteTextFile(dir_.File("train.jsonl"), testing::TinyPromptCompletionData(64));
    WriteTextFile(dir_.File("valid.jsonl"), PreTokenizedValidation(16));
  }

  nlohmann::json Spec(int max_steps) const {
    return {{"model_path", dir_.File("model")},
            {"train_path", dir_.File("train.jsonl")},
            {"valid_path", dir_.File("valid.jsonl")},
            {"lora",
             {{"r", 4},
              {"alpha", 8},
              {"dropout", 0.1},
              {"target_modules", {"q_proj", "v_proj", "down_proj"}}}},
            {"training",
             {{"max_steps", max_steps},
              {"batch_size", 8},
              {"learning_rate", 1e-2},
              {"warmup_steps", 2},
              {"seq_len", 32},
              {"seed", 3},
              {"eval_every_steps", max_steps}}}};
  }

  TrainerRun Train(const nlohmann::json& spec, const std::string& out,
                   std::vector<std::string> extra = {}) {
    WriteTextFile(dir_.File(out + ".json"), spec.dump(2));
    std::vector<std::string> args = {
        "--spec", dir_.File(out + ".json"), "--out", dir_.File(out), "--threads", "2"};
    args.insert(args.end(), extra.begin(), extra.end());
    return RunProcess(TrainerBinary(), args);
  }

  // hf_reference.py with `args`; its stdout lines (JSON) are returned.
  TrainerRun Reference(std::vector<std::string> args) {
    args.insert(args.begin(),
                std::string(TUNELEDGER_SOURCE_DIR) + "/tests/trainer/reference/hf_reference.py");
    TrainerRun run = RunProcess(TUNELEDGER_TEST_PYTHON, args, nullptr, 300);
    EXPECT_EQ(run.exit_code, 0) << run.stderr_text;
    return run;
  }

  double PeftEvalLoss(const std::string& adapter_dir) {
    std::vector<std::string> args = {"eval-loss", "--model-dir", dir_.File("model"), "--data",
                                     dir_.File("valid.jsonl")};
    if (!adapter_dir.empty()) args.insert(args.end(), {"--adapter", adapter_dir});
    TrainerRun run = Reference(args);
    if (run.lines.empty()) return -1;
    return run.lines.back()["eval_loss"].get<double>();
  }

  TempDir dir_;
};

TEST_F(PeftReferenceTest, AdapterAndMergedModelLoadInPeftAndTransformersWithTheTrainersLoss) {
  nlohmann::json spec = Spec(30);
  spec["training"]["save_merged_model"] = true;
  const TrainerRun run = Train(spec, "out");
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  const nlohmann::json& done = run.lines.back();
  ASSERT_EQ(done["type"], "done");
  const double trainer_loss = done["eval_loss"];
  const std::string adapter = done["adapter_dir"];

  const double peft_loss = PeftEvalLoss(adapter);
  const double base_loss = PeftEvalLoss("");
  std::cout << "eval loss: trainer " << trainer_loss << ", PEFT-loaded adapter " << peft_loss
            << ", base model alone " << base_loss << "\n";
  EXPECT_NEAR(peft_loss, trainer_loss, kLossTolerance)
      << "PeftModel.from_pretrained(" << adapter << ") scores another model than the trainer";
  // The check means something only if the adapter moves the loss far more than the tolerance.
  EXPECT_GT(std::abs(base_loss - trainer_loss), 100 * kLossTolerance);

  // The merged model in transformers = base + adapter in PEFT, on the same ids.
  const torch::Tensor ids = torch::randint(3, ByteTokenizer::kVocabSize, {2, 20},
                                           torch::dtype(torch::kInt64));  // [B,T]
  WriteSafetensors(dir_.File("ids.safetensors"), {{"input_ids", ids}});
  Reference({"logits", "--model-dir", done["merged_dir"].get<std::string>(), "--input",
             dir_.File("ids.safetensors"), "--out", dir_.File("merged.safetensors")});
  Reference({"logits", "--model-dir", dir_.File("model"), "--adapter", adapter, "--input",
             dir_.File("ids.safetensors"), "--out", dir_.File("peft.safetensors")});
  const torch::Tensor merged =
      SafetensorsFile::Open(dir_.File("merged.safetensors")).Tensor("float32");  // [B,T,V]
  const torch::Tensor peft =
      SafetensorsFile::Open(dir_.File("peft.safetensors")).Tensor("float32");  // [B,T,V]
  const double diff = (merged - peft).abs().max().item<double>();
  std::cout << "merged model vs base + adapter: max |logit diff| " << diff << "\n";
  EXPECT_LE(diff, 1e-4);
}

TEST_F(PeftReferenceTest, PeftWrittenAdapterStartsAJobAtPeftsLoss) {
  Reference({"make-adapter", "--model-dir", dir_.File("model"), "--out", dir_.File("peft-adapter"),
             "--r", "4", "--alpha", "8", "--targets", "q_proj,v_proj,down_proj", "--seed", "9"});
  const double peft_loss = PeftEvalLoss(dir_.File("peft-adapter"));

  const TrainerRun run = Train(Spec(2), "out", {"--init-adapter", dir_.File("peft-adapter")});
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  const auto evals = run.OfType("eval");
  ASSERT_FALSE(evals.empty());
  ASSERT_EQ(evals.front()["step"], 0);
  const double trainer_loss = evals.front()["eval_loss"];
  std::cout << "step-0 eval loss with the PEFT adapter: trainer " << trainer_loss << ", PEFT "
            << peft_loss << "\n";
  EXPECT_NEAR(trainer_loss, peft_loss, kLossTolerance);

  // An adapter of another shape is refused with the field named, before any training.
  nlohmann::json other = Spec(2);
  other["lora"]["r"] = 8;
  const TrainerRun refused = Train(other, "refused", {"--init-adapter", dir_.File("peft-adapter")});
  EXPECT_EQ(refused.exit_code, 1);
  ASSERT_FALSE(refused.lines.empty());
  EXPECT_EQ(refused.lines.back()["type"], "error");
  EXPECT_THAT(refused.lines.back()["message"].get<std::string>(),
              HasSubstr("r is 4, the job's lora.r is 8"));
}

}  // namespace
}  // namespace tuneledger::train
