// tuneledger-train as a process on a tiny random model: the progress protocol, exact resume
// after SIGTERM, determinism, divergence and input errors as `error` lines.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>

#include "tests/trainer/recipe_test_util.h"

namespace tuneledger::train {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::MaxAdapterDiff;
using testing::RunProcess;
using testing::TempDir;
using testing::TrainerBinary;
using testing::TrainerRun;
using testing::WriteTextFile;

constexpr int kTotalSteps = 120;

class TrainProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::MakeTinyModel(dir_.File("model"));
    WriteTextFile(dir_.File("train.jsonl"), testing::TinyPromptCompletionData(64));
    WriteTextFile(dir_.File("valid.jsonl"), testing::TinyPromptCompletionData(8, 64));
  }

  // A job whose dropout, accumulation and schedule all matter for an exact resume.
  nlohmann::json Spec() const {
    return {{"model_path", dir_.File("model")},
            {"train_path", dir_.File("train.jsonl")},
            {"valid_path", dir_.File("valid.jsonl")},
            {"lora",
             {{"r", 4},
              {"alpha", 8},
              {"dropout", 0.1},
              {"target_modules", {"q_proj", "v_proj", "o_proj", "down_proj"}}}},
            {"training",
             {{"max_steps", kTotalSteps},
              {"batch_size", 4},
              {"grad_accum_steps", 2},
              {"learning_rate", 5e-3},
              {"warmup_steps", 5},
              {"seq_len", 32},
              {"seed", 11},
              {"checkpoint_every_steps", 10},
              {"eval_every_steps", 40}}}};
  }

  std::string WriteSpec(const nlohmann::json& spec, const std::string& name = "spec.json") {
    WriteTextFile(dir_.File(name), spec.dump(2));
    return dir_.File(name);
  }

  TrainerRun Train(const std::string& spec, const std::string& out,
                   std::vector<std::string> extra = {},
                   const std::function<bool(const nlohmann::json&)>& on_line = nullptr) {
    std::vector<std::string> args = {"--spec", spec, "--out", out, "--threads", "2"};
    args.insert(args.end(), extra.begin(), extra.end());
    return RunProcess(TrainerBinary(), args, on_line);
  }

  TempDir dir_;
};

TEST_F(TrainProcessTest, WritesTheProgressProtocolAndAnAdapter) {
  nlohmann::json spec = Spec();
  spec["training"]["save_merged_model"] = true;
  spec["training"]["sample_prompt"] = "copy cat dog:";
  spec["training"]["sample_max_tokens"] = 8;
  const TrainerRun run = Train(WriteSpec(spec), dir_.File("out"));
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;

  ASSERT_FALSE(run.lines.empty());
  const nlohmann::json& started = run.lines.front();
  EXPECT_EQ(started["type"], "started");
  EXPECT_EQ(started["total_steps"], kTotalSteps);
  EXPECT_EQ(started["start_step"], 0);
  EXPECT_EQ(started["device"], "cpu");
  EXPECT_EQ(started["precision"], "fp32");
  EXPECT_GT(started["trainable_params"].get<int64_t>(), 0);
  EXPECT_GT(started["total_params"].get<int64_t>(), started["trainable_params"].get<int64_t>());

  const auto progress = run.OfType("progress");
  ASSERT_EQ(progress.size(), static_cast<size_t>(kTotalSteps));
  int64_t previous_tokens = 0;
  for (size_t i = 0; i < progress.size(); ++i) {
    const auto& line = progress[i];
    EXPECT_EQ(line["step"], static_cast<int64_t>(i + 1));
    EXPECT_EQ(line["total_steps"], kTotalSteps);
    for (const char* field : {"epoch", "loss", "lr", "tokens_per_sec", "elapsed_s"}) {
      EXPECT_TRUE(line[field].is_number()) << field << " in " << line.dump();
    }
    EXPECT_GT(line["tokens"].get<int64_t>(), previous_tokens);
    previous_tokens = line["tokens"].get<int64_t>();
  }
  // 64 examples / batch 4 = 16 batches per epoch, 2 per step: 8 steps per epoch.
  EXPECT_DOUBLE_EQ(progress[7]["epoch"].get<double>(), 1.0);
  EXPECT_LT(progress.back()["loss"].get<double>(), progress.front()["loss"].get<double>());

  const auto evals = run.OfType("eval");
  ASSERT_EQ(evals.size(), 4u) << "step 0, 40, 80, 120";
  EXPECT_EQ(evals.front()["step"], 0);
  EXPECT_EQ(evals.back()["step"], kTotalSteps);
  EXPECT_LT(evals.back()["eval_loss"].get<double>(), evals.front()["eval_loss"].get<double>());
  EXPECT_EQ(run.OfType("checkpoint").size(), 11u) << "steps 10..110";

  const nlohmann::json& done = run.lines.back();
  EXPECT_EQ(done["type"], "done");
  EXPECT_EQ(done["step"], kTotalSteps);
  EXPECT_EQ(done["eval_loss"], evals.back()["eval_loss"]);
  EXPECT_TRUE(done["train_loss"].is_number());
  const std::string adapter = done["adapter_dir"];
  EXPECT_EQ(adapter, fs::absolute(dir_.File("out/adapter")).string());
  EXPECT_TRUE(fs::exists(adapter + "/adapter_model.safetensors"));
  EXPECT_TRUE(fs::exists(adapter + "/adapter_config.json"));
  EXPECT_TRUE(fs::exists(done["merged_dir"].get<std::string>() + "/model.safetensors"));
  EXPECT_THAT(run.stderr_text, HasSubstr("sample before training"));
  EXPECT_THAT(run.stderr_text, HasSubstr("sample after training"));
  // Only the newest 3 checkpoints are kept.
  EXPECT_TRUE(fs::exists(dir_.File("out/checkpoints/step-110")));
  EXPECT_FALSE(fs::exists(dir_.File("out/checkpoints/step-70")));
}

TEST_F(TrainProcessTest, ResumeAfterSigtermIsExact) {
  const std::string spec = WriteSpec(Spec());
  const TrainerRun straight = Train(spec, dir_.File("straight"));
  ASSERT_EQ(straight.exit_code, 0) << straight.stderr_text;

  // SIGTERM right after the first checkpoint line: the trainer finishes its current step,
  // checkpoints there (usually not a multiple of 10) and exits 75.
  const TrainerRun stopped = Train(spec, dir_.File("resumed"), {}, [](const nlohmann::json& line) {
    return line["type"] == "checkpoint";
  });
  ASSERT_EQ(stopped.exit_code, 75) << stopped.stderr_text;
  const auto stop_lines = stopped.OfType("stopped");
  ASSERT_EQ(stop_lines.size(), 1u);
  const int64_t stop_step = stop_lines[0]["step"];
  EXPECT_GE(stop_step, 10);
  EXPECT_LT(stop_step, kTotalSteps);
  const std::string stop_checkpoint = stop_lines[0]["checkpoint"];
  EXPECT_TRUE(fs::exists(stop_checkpoint + "/header.json"));
  EXPECT_TRUE(stopped.OfType("done").empty());

  // --resume-from: a new attempt folder starting from the stopped attempt's checkpoint (run
  // first: resuming in place later prunes that checkpoint folder).
  const TrainerRun other = Train(spec, dir_.File("other"), {"--resume-from", stop_checkpoint});
  ASSERT_EQ(other.exit_code, 0) << other.stderr_text;
  EXPECT_EQ(other.lines.front()["start_step"], stop_step);
  const double other_diff =
      MaxAdapterDiff(dir_.File("straight/adapter"), dir_.File("other/adapter"));
  EXPECT_LE(other_diff, 1e-6) << "--resume-from adapter: max abs diff " << other_diff;

  const TrainerRun resumed = Train(spec, dir_.File("resumed"));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.stderr_text;
  EXPECT_EQ(resumed.lines.front()["start_step"], stop_step);
  const auto progress = resumed.OfType("progress");
  ASSERT_FALSE(progress.empty());
  EXPECT_EQ(progress.front()["step"], stop_step + 1);
  // Cumulative tokens continue across attempts and end where the straight run ended.
  EXPECT_EQ(progress.back()["tokens"], straight.OfType("progress").back()["tokens"]);

  const double diff = MaxAdapterDiff(dir_.File("straight/adapter"), dir_.File("resumed/adapter"));
  EXPECT_LE(diff, 1e-6) << "resumed adapter vs uninterrupted run: max abs diff " << diff;
}

TEST_F(TrainProcessTest, TwoRunsWithTheSameSeedAreIdentical) {
  nlohmann::json spec = Spec();
  spec["training"]["max_steps"] = 30;
  const std::string path = WriteSpec(spec);
  ASSERT_EQ(Train(path, dir_.File("a")).exit_code, 0);
  ASSERT_EQ(Train(path, dir_.File("b")).exit_code, 0);
  const double diff = MaxAdapterDiff(dir_.File("a/adapter"), dir_.File("b/adapter"));
  EXPECT_EQ(diff, 0.0) << "same seed, max abs diff " << diff;

  spec["training"]["seed"] = 12;
  ASSERT_EQ(Train(WriteSpec(spec, "spec2.json"), dir_.File("c")).exit_code, 0);
  EXPECT_GT(MaxAdapterDiff(dir_.File("a/adapter"), dir_.File("c/adapter")), 0.0)
      << "another seed must give another adapter";
}

// Precision and gradient checkpointing reach the model: bf16 / fp16 base weights (fp16 with
// dynamic loss scaling) and per-layer recomputation all train and lower the loss.
TEST_F(TrainProcessTest, PrecisionsAndGradientCheckpointingTrain) {
  for (const char* precision : {"BF16", "FP16"}) {
    nlohmann::json spec = Spec();
    spec["training"]["max_steps"] = 16;
    spec["training"]["precision"] = precision;
    spec["training"]["gradient_checkpointing"] = std::string(precision) == "FP16";
    const TrainerRun run = Train(WriteSpec(spec), dir_.File(std::string("out-") + precision));
    ASSERT_EQ(run.exit_code, 0) << precision << ": " << run.stderr_text;
    std::string expected = precision == std::string("BF16") ? "bf16" : "fp16";
    EXPECT_EQ(run.lines.front()["precision"], expected);
    const auto evals = run.OfType("eval");
    ASSERT_GE(evals.size(), 2u);
    EXPECT_LT(evals.back()["eval_loss"].get<double>(), evals.front()["eval_loss"].get<double>())
        << precision;
  }
}

TEST_F(TrainProcessTest, DivergenceIsAnErrorNamingTheStep) {
  nlohmann::json spec = Spec();
  spec["training"]["learning_rate"] = 1e30;
  spec["training"]["warmup_steps"] = 0;
  const TrainerRun run = Train(WriteSpec(spec), dir_.File("out"));
  EXPECT_EQ(run.exit_code, 1) << run.stderr_text;
  ASSERT_FALSE(run.lines.empty());
  EXPECT_EQ(run.lines.back()["type"], "error");
  EXPECT_THAT(run.lines.back()["message"].get<std::string>(),
              ::testing::MatchesRegex("diverged at step [0-9]+: .*"));
}

TEST_F(TrainProcessTest, InputErrorsAreErrorLines) {
  WriteTextFile(dir_.File("bad.jsonl"), testing::TinyPromptCompletionData(2) + "{\"txt\": 1}\n");
  nlohmann::json spec = Spec();
  spec["train_path"] = dir_.File("bad.jsonl");
  TrainerRun run = Train(WriteSpec(spec), dir_.File("out"));
  EXPECT_EQ(run.exit_code, 1);
  ASSERT_FALSE(run.lines.empty());
  EXPECT_EQ(run.lines.back()["type"], "error");
  EXPECT_THAT(run.lines.back()["message"].get<std::string>(), HasSubstr("bad.jsonl:3: "));

  spec = Spec();
  spec["training"]["warmupSteps"] = 1;
  spec["training"]["warmup_steps"] = 2;
  spec["training"]["mystery"] = true;
  run = Train(WriteSpec(spec), dir_.File("out"));
  EXPECT_EQ(run.exit_code, 1);
  ASSERT_FALSE(run.lines.empty());
  EXPECT_THAT(run.lines.back()["message"].get<std::string>(), HasSubstr("training.mystery"));

  spec = Spec();
  fs::remove(dir_.File("model/model.safetensors"));
  run = Train(WriteSpec(spec), dir_.File("out"));
  EXPECT_EQ(run.exit_code, 1);
  ASSERT_FALSE(run.lines.empty());
  EXPECT_EQ(run.lines.back()["type"], "error");

  run = RunProcess(TrainerBinary(), {"--spec"});
  EXPECT_EQ(run.exit_code, 2);
  run = RunProcess(TrainerBinary(), {"--spec", "x", "--out", "y", "--frobnicate", "1"});
  EXPECT_EQ(run.exit_code, 2);
  run = RunProcess(TrainerBinary(), {"--help"}, nullptr, 60, /*stdout_is_json=*/false);
  EXPECT_EQ(run.exit_code, 0);
  EXPECT_THAT(run.stdout_text, HasSubstr("usage: tuneledger-train --spec FILE --out DIR"));
}

// Sets an environment variable for the children this test starts; restores it on scope exit.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value, /*overwrite=*/1);
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST_F(TrainProcessTest, MinStepSecondsPacesEveryStepButTheLast) {
  nlohmann::json spec = Spec();
  spec["training"]["max_steps"] = 5;
  spec.erase("valid_path");
  {
    // Long enough that the unpaced run (about 2 s here, model loading included) cannot pass.
    ScopedEnv pace("TUNELEDGER_TRAIN_MIN_STEP_SECONDS", "1.5");
    const TrainerRun run = Train(WriteSpec(spec), dir_.File("paced"));
    ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
    const std::vector<nlohmann::json> progress = run.OfType("progress");
    ASSERT_EQ(progress.size(), 5u);
    // Step 5 starts at least 4 paced steps after step 1 did, and elapsed_s counts from before
    // step 1: a lower bound, which no machine's speed or noise can break.
    EXPECT_GE(progress.back()["elapsed_s"].get<double>(), 4 * 1.5);
  }
  {
    ScopedEnv pace("TUNELEDGER_TRAIN_MIN_STEP_SECONDS", "-1");
    const TrainerRun run = Train(WriteSpec(spec), dir_.File("bad-pace"));
    EXPECT_EQ(run.exit_code, 1);
    ASSERT_FALSE(run.lines.empty());
    EXPECT_EQ(run.lines.back()["type"], "error");
    EXPECT_THAT(run.lines.back()["message"].get<std::string>(),
                HasSubstr("TUNELEDGER_TRAIN_MIN_STEP_SECONDS"));
  }
}

}  // namespace
}  // namespace tuneledger::train
