// tuneledger-train as a process on a tiny random model: the progress protocol, exact resume
// after SIGTERM, determinism, divergence and input errors as `error` lines, "messages" data
// through the model's own chat template.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>

#include "tests/testing/temp_dir.h"
#include "tests/trainer/recipe_test_util.h"

namespace tuneledger::train {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::MaxAdapterDiff;
using testing::RunProcess;
using testing::ScopedEnv;
using testing::TrainerBinary;
using testing::TrainerRun;
using testing::WriteTextFile;
using ::tuneledger::testing::TempDir;

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
                   const std::vector<std::string>& extra = {},
                   const std::function<bool(const nlohmann::json&)>& on_line = nullptr) {
    return testing::RunTrainer(spec, out, extra, on_line);
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

// A job that prunes (a checkpoint every 10 of 120 steps, the newest 3 kept) is stopped by
// SIGTERM, resumed in place, stopped again, and finished by another attempt from the second
// stop's checkpoint (--resume-from): its adapter file is byte-identical to an unbroken run's.
TEST_F(TrainProcessTest, StoppedResumedInPlaceAndElsewhereEndsByteIdentical) {
  const std::string spec = WriteSpec(Spec());
  const TrainerRun straight = Train(spec, dir_.File("straight"));
  ASSERT_EQ(straight.exit_code, 0) << straight.stderr_text;

  // Attempt 1: SIGTERM once its 6th checkpoint is written (three older ones were pruned by
  // then); the trainer finishes its current step, checkpoints there and exits 75.
  int checkpoints = 0;
  const TrainerRun first = Train(spec, dir_.File("attempt-1"), {}, [&](const nlohmann::json& line) {
    return line["type"] == "checkpoint" && ++checkpoints == 6;
  });
  ASSERT_EQ(first.exit_code, 75) << first.stderr_text;
  ASSERT_EQ(first.OfType("stopped").size(), 1u);
  const int64_t first_stop = first.OfType("stopped")[0]["step"];
  EXPECT_GE(first_stop, 60);
  EXPECT_LT(first_stop, kTotalSteps);
  EXPECT_FALSE(fs::exists(dir_.File("attempt-1/checkpoints/step-10"))) << "not pruned";
  EXPECT_TRUE(first.OfType("done").empty());

  // Attempt 1 again, in place: resumes from its own newest checkpoint; stopped after 2 more.
  checkpoints = 0;
  const TrainerRun second =
      Train(spec, dir_.File("attempt-1"), {}, [&](const nlohmann::json& line) {
        return line["type"] == "checkpoint" && ++checkpoints == 2;
      });
  ASSERT_EQ(second.exit_code, 75) << second.stderr_text;
  EXPECT_EQ(second.lines.front()["start_step"], first_stop);
  ASSERT_EQ(second.OfType("stopped").size(), 1u);
  const int64_t second_stop = second.OfType("stopped")[0]["step"];
  const std::string second_checkpoint = second.OfType("stopped")[0]["checkpoint"];
  EXPECT_GT(second_stop, first_stop);
  EXPECT_LT(second_stop, kTotalSteps);

  // Attempt 2: a new folder starting from attempt 1's last checkpoint.
  const TrainerRun last = Train(spec, dir_.File("attempt-2"), {"--resume-from", second_checkpoint});
  ASSERT_EQ(last.exit_code, 0) << last.stderr_text;
  EXPECT_EQ(last.lines.front()["start_step"], second_stop);
  const auto progress = last.OfType("progress");
  ASSERT_FALSE(progress.empty());
  EXPECT_EQ(progress.front()["step"], second_stop + 1);
  // Cumulative tokens continue across attempts and end where the straight run ended.
  EXPECT_EQ(progress.back()["tokens"], straight.OfType("progress").back()["tokens"]);
  EXPECT_EQ(last.lines.back()["eval_loss"], straight.lines.back()["eval_loss"]);

  const std::string expected =
      testing::ReadTextFile(dir_.File("straight/adapter/adapter_model.safetensors"));
  const std::string actual =
      testing::ReadTextFile(dir_.File("attempt-2/adapter/adapter_model.safetensors"));
  ASSERT_FALSE(expected.empty());
  EXPECT_TRUE(expected == actual)
      << "adapter after two stops and two resumes differs from the unbroken run's: max abs diff "
      << MaxAdapterDiff(dir_.File("straight/adapter"), dir_.File("attempt-2/adapter"));
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

// A model folder with a tokenizer_config.json chat_template (SmolLM2's): "messages" data
// renders with it, and the job says which template it used.
TEST_F(TrainProcessTest, MessagesDataTrainsWithTheModelsChatTemplate) {
  testing::WriteSmolLM2StyleTokenizer(dir_.File("model"));
  std::string data;
  for (const char* word : {"cat", "dog", "sun", "map", "cup", "hat", "pen", "box"}) {
    data += nlohmann::json{{"messages",
                            {{{"role", "system"}, {"content", "Copy."}},
                             {{"role", "user"}, {"content", std::string("say ") + word}},
                             {{"role", "assistant"}, {"content", word}}}}}
                .dump() +
            "\n";
  }
  WriteTextFile(dir_.File("chat.jsonl"), data);
  nlohmann::json spec = Spec();
  spec["train_path"] = dir_.File("chat.jsonl");
  spec.erase("valid_path");
  spec["training"]["max_steps"] = 4;
  spec["training"]["warmup_steps"] = 1;
  spec["training"]["seq_len"] = 96;
  spec["training"]["eval_every_steps"] = 0;
  const TrainerRun run = Train(WriteSpec(spec), dir_.File("out"));
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_THAT(run.stderr_text,
              HasSubstr("chat template for \"messages\" data: " + dir_.File("model") +
                        "/tokenizer_config.json: chat_template"));
  EXPECT_THAT(run.stderr_text, HasSubstr("data: 8 training examples (0 truncated"));
  EXPECT_EQ(run.lines.back()["type"], "done");
}

TEST_F(TrainProcessTest, DivergenceIsAnErrorNamingTheStepWithReasonLossDiverged) {
  nlohmann::json spec = Spec();
  spec["training"]["learning_rate"] = 1e30;
  spec["training"]["warmup_steps"] = 0;
  const TrainerRun run = Train(WriteSpec(spec), dir_.File("out"));
  EXPECT_EQ(run.exit_code, 1) << run.stderr_text;
  ASSERT_FALSE(run.lines.empty());
  EXPECT_EQ(run.lines.back()["type"], "error");
  EXPECT_THAT(run.lines.back()["message"].get<std::string>(),
              ::testing::MatchesRegex("diverged at step [0-9]+: .*"));
  EXPECT_EQ(run.lines.back()["reason"], "loss_diverged");
}

// Where a patience-p early stop must end, computed from an unbroken run's eval lines: each
// evaluation that beats the best by more than min_delta becomes the best; p in a row that do
// not end the run.
struct ExpectedEarlyStop {
  int64_t stop_step = -1;  // -1: the run never stops early
  int64_t best_step = 0;
  double best_eval_loss = 0;
};
ExpectedEarlyStop PredictEarlyStop(const std::vector<nlohmann::json>& evals, int patience,
                                   double min_delta) {
  ExpectedEarlyStop expected;
  std::optional<double> best;
  int since_best = 0;
  for (const nlohmann::json& eval : evals) {
    const double loss = eval["eval_loss"];
    if (!best || loss < *best - min_delta) {
      best = loss;
      expected.best_step = eval["step"];
      expected.best_eval_loss = loss;
      since_best = 0;
    } else if (++since_best >= patience) {
      expected.stop_step = eval["step"];
      return expected;
    }
  }
  return expected;
}

// training.early_stop: the run ends after patience evaluations without an improvement of more
// than min_delta, where an independent reading of an unbroken run's eval losses says it must;
// its adapter is the best evaluation's (equal to a run that stopped at that step: with a constant
// schedule the first k steps do not depend on the total), and the done line says so.
TEST_F(TrainProcessTest, EarlyStopEndsAfterPatienceEvalsWithTheBestEvaluationsAdapter) {
  constexpr int kPatience = 2;
  constexpr double kMinDelta = 0.02;
  nlohmann::json spec = Spec();
  spec["training"]["lr_schedule"] = "CONSTANT";
  spec["training"]["warmup_steps"] = 0;
  spec["training"]["learning_rate"] = 2e-2;
  spec["training"]["eval_every_steps"] = 4;
  const TrainerRun unbroken = Train(WriteSpec(spec, "unbroken.json"), dir_.File("unbroken"));
  ASSERT_EQ(unbroken.exit_code, 0) << unbroken.stderr_text;
  const ExpectedEarlyStop expected =
      PredictEarlyStop(unbroken.OfType("eval"), kPatience, kMinDelta);
  ASSERT_GT(expected.stop_step, 0) << "the unbroken run's eval losses never plateau";
  ASSERT_GT(expected.best_step, 0) << "no evaluation after step 0 improved";

  spec["training"]["early_stop"] = {{"patience_evals", kPatience}, {"min_delta", kMinDelta}};
  const TrainerRun stopped = Train(WriteSpec(spec, "early.json"), dir_.File("early"));
  ASSERT_EQ(stopped.exit_code, 0) << stopped.stderr_text;
  const nlohmann::json& done = stopped.lines.back();
  ASSERT_EQ(done["type"], "done");
  EXPECT_EQ(done["early_stopped"], true);
  EXPECT_EQ(done["step"], expected.stop_step);
  EXPECT_EQ(done["best_step"], expected.best_step);
  // The restored weights are evaluated again: the last eval loss is the adapter's.
  EXPECT_NEAR(done["eval_loss"].get<double>(), expected.best_eval_loss, 1e-6);
  EXPECT_EQ(stopped.OfType("eval").back()["step"], expected.stop_step);
  EXPECT_EQ(stopped.OfType("progress").size(), static_cast<size_t>(expected.stop_step));

  nlohmann::json at_best = spec;
  at_best["training"].erase("early_stop");
  at_best["training"]["max_steps"] = expected.best_step;
  ASSERT_EQ(Train(WriteSpec(at_best, "at-best.json"), dir_.File("at-best")).exit_code, 0);
  EXPECT_EQ(MaxAdapterDiff(dir_.File("early/adapter"), dir_.File("at-best/adapter")), 0.0)
      << "the early-stopped adapter is not the best evaluation's";

  // Stopped by a signal after the best evaluation and resumed from its checkpoint: the best
  // weights and the count of evaluations without improvement travel in it, so the run ends
  // where the unbroken one did. Paced, so that the signal lands before the patience runs out.
  TrainerRun interrupted;
  {
    ScopedEnv pace("TUNELEDGER_TRAIN_MIN_STEP_SECONDS", "0.1");
    interrupted = Train(WriteSpec(spec, "early.json"), dir_.File("resumed"), {},
                        [&](const nlohmann::json& line) {
                          return line["type"] == "eval" && line["step"] == expected.best_step + 4;
                        });
  }
  ASSERT_EQ(interrupted.exit_code, 75) << interrupted.stderr_text;
  const TrainerRun resumed = Train(WriteSpec(spec, "early.json"), dir_.File("resumed"));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.stderr_text;
  EXPECT_GT(resumed.lines.front()["start_step"].get<int64_t>(), expected.best_step);
  EXPECT_EQ(resumed.lines.back()["step"], expected.stop_step);
  EXPECT_EQ(resumed.lines.back()["best_step"], expected.best_step);
  EXPECT_EQ(MaxAdapterDiff(dir_.File("resumed/adapter"), dir_.File("at-best/adapter")), 0.0);
}

// training.early_stop.divergence_factor: a loss that climbs past the factor times its lowest
// 10-step mean fails at once, naming the factor, with reason loss_diverged.
TEST_F(TrainProcessTest, ALossPastTheDivergenceFactorFailsWithReasonLossDiverged) {
  // The bundled pre-trained model: its loss starts low, so a wild learning rate can raise it
  // (a random-init model starts near log(vocab) and cannot go much higher).
  const std::string repo = TUNELEDGER_SOURCE_DIR;
  nlohmann::json spec = Spec();
  spec["model_path"] = repo + "/models/tiny-llama";
  spec["train_path"] = repo + "/models/demo/train.jsonl";
  spec.erase("valid_path");
  spec["training"]["seq_len"] = 128;
  spec["training"]["lr_schedule"] = "CONSTANT";
  spec["training"]["warmup_steps"] = 0;
  spec["training"]["learning_rate"] = 100.0;
  spec["training"]["max_grad_norm"] = 0;
  spec["training"]["early_stop"] = {{"divergence_factor", 1.2}};
  const TrainerRun run = Train(WriteSpec(spec), dir_.File("out"));
  EXPECT_EQ(run.exit_code, 1) << run.stderr_text;
  ASSERT_FALSE(run.lines.empty());
  const nlohmann::json& error = run.lines.back();
  ASSERT_EQ(error["type"], "error") << run.stdout_text;
  EXPECT_EQ(error["reason"], "loss_diverged");
  EXPECT_THAT(error["message"].get<std::string>(),
              HasSubstr("above training.early_stop.divergence_factor 1.2 x its lowest"));
  EXPECT_LT(run.OfType("progress").size(), static_cast<size_t>(kTotalSteps));
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

// The build links LibTorch's CUDA backend wherever nvcc exists (worker/trainer/libtorch.cmake),
// so a CI machine with the CUDA toolkit but no GPU still builds and loads the CUDA trainer.
TEST(TrainerBuildTest, VersionShowsLibTorch2AndTheCudaBackendWhereNvccExists) {
  const TrainerRun run = RunProcess(TrainerBinary(), {"--version"});
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  ASSERT_EQ(run.lines.size(), 1u) << run.stdout_text;
  const nlohmann::json& version = run.lines[0];
  EXPECT_EQ(version["libtorch"].get<std::string>().substr(0, 2), "2.");
  EXPECT_GE(version["cuda_devices"].get<int>(), 0);
  const bool nvcc =
      fs::exists("/usr/local/cuda/bin/nvcc") || std::system("command -v nvcc >/dev/null 2>&1") == 0;
  if (nvcc) {
    EXPECT_TRUE(version["cuda_backend"].get<bool>()) << "nvcc exists but the trainer has no CUDA";
  }
#if defined(TUNELEDGER_WITH_CUDA)
  EXPECT_TRUE(version["cuda_backend"].get<bool>());
#else
  EXPECT_FALSE(version["cuda_backend"].get<bool>());
#endif
}

// tuneledger-generate scores an adapter on held-out prompts: one line per example, a summary
// whose counts match the lines, exact match = generated text equal to the completion.
TEST_F(TrainProcessTest, GenerateScoresAHeldOutSetWithTheAdapter) {
  nlohmann::json spec = Spec();
  spec["training"]["max_steps"] = 30;
  ASSERT_EQ(Train(WriteSpec(spec), dir_.File("out")).exit_code, 0);
  const std::string generate = std::string(TUNELEDGER_BIN_DIR) + "/tuneledger-generate";
  auto score = [&](const std::string& data) {
    return RunProcess(
        generate, {"--model", dir_.File("model"), "--adapter", dir_.File("out/adapter"), "--data",
                   data, "--max-new-tokens", "12", "--threads", "2"});
  };
  WriteTextFile(dir_.File("heldout.jsonl"), testing::TinyPromptCompletionData(6, 100));
  const TrainerRun first = score(dir_.File("heldout.jsonl"));
  ASSERT_EQ(first.exit_code, 0) << first.stderr_text;
  const auto examples = first.OfType("example");
  ASSERT_EQ(examples.size(), 6u);

  // The same prompts, expecting what the model wrote for the even ones (plus surrounding
  // whitespace, which does not count) and something else for the odd ones: 3 of 6 exact.
  std::string data;
  for (size_t i = 0; i < examples.size(); ++i) {
    const std::string generated = examples[i]["generated"];
    data += nlohmann::json{{"prompt", examples[i]["prompt"]},
                           {"completion", i % 2 == 0 ? " " + generated + "\n" : generated + "x"}}
                .dump() +
            "\n";
  }
  WriteTextFile(dir_.File("expected.jsonl"), data);
  const TrainerRun second = score(dir_.File("expected.jsonl"));
  ASSERT_EQ(second.exit_code, 0) << second.stderr_text;
  const nlohmann::json& summary = second.lines.back();
  EXPECT_EQ(summary["type"], "summary");
  EXPECT_EQ(summary["examples"], 6);
  EXPECT_EQ(summary["exact"], 3);
  EXPECT_DOUBLE_EQ(summary["exact_match"].get<double>(), 0.5);
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(second.lines[i]["exact"], i % 2 == 0) << i;
    EXPECT_EQ(second.lines[i]["generated"], examples[i]["generated"])
        << "decoding is deterministic";
  }

  // Bad input: an error line naming the line; a missing flag is a usage error.
  WriteTextFile(dir_.File("bad.jsonl"),
                testing::TinyPromptCompletionData(1) + "{\"text\": \"x\"}\n");
  const TrainerRun bad = score(dir_.File("bad.jsonl"));
  EXPECT_EQ(bad.exit_code, 1);
  ASSERT_FALSE(bad.lines.empty());
  EXPECT_THAT(bad.lines.back()["message"].get<std::string>(), HasSubstr("bad.jsonl:2: "));
  EXPECT_EQ(RunProcess(generate, {"--model", dir_.File("model")}, nullptr, 60, false).exit_code, 2);
}

}  // namespace
}  // namespace tuneledger::train
