// training.data_selection through tuneledger-train as a process: the scoring lines and
// data_selection.jsonl, scores that ignore --init-adapter, resume without scoring again on the
// same examples (byte-identical to an unbroken run), a stop during scoring, and on the bundled
// pretrained model: selection finds the informative half of a training set and trains as well
// as the full set for fewer tokens.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "tests/testing/temp_dir.h"
#include "tests/trainer/recipe_test_util.h"

namespace tuneledger::train {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::MaxAdapterDiff;
using testing::ReadTextFile;
using testing::RunProcess;
using testing::ScopedEnv;
using testing::TrainerBinary;
using testing::TrainerRun;
using testing::WriteTextFile;
using ::tuneledger::testing::TempDir;

std::vector<nlohmann::json> ReadJsonLines(const std::string& path) {
  std::istringstream text(ReadTextFile(path));
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(text, line);) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

// The kept example indices of a data_selection.jsonl file, ascending.
std::vector<int64_t> KeptOf(const std::vector<nlohmann::json>& lines) {
  std::vector<int64_t> kept;
  for (const nlohmann::json& line : lines) {
    if (line["kept"] == true) kept.push_back(line["example"]);
  }
  return kept;
}

// Every line before the first of `type`, of type `before`, and none after it.
bool AllBefore(const TrainerRun& run, const std::string& before, const std::string& type) {
  bool seen = false;
  for (const nlohmann::json& line : run.lines) {
    if (line["type"] == type) seen = true;
    if (line["type"] == before && seen) return false;
  }
  return true;
}

class DataSelectionProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::MakeTinyModel(dir_.File("model"));
    // A blank first line: example i is on line i + 2.
    WriteTextFile(dir_.File("train.jsonl"), "\n" + testing::TinyPromptCompletionData(64));
    WriteTextFile(dir_.File("valid.jsonl"), testing::TinyPromptCompletionData(8, 64));
  }

  // 16 of 64 examples kept; 2 epochs of 4 batches of 4.
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
             {{"epochs", 2},
              {"batch_size", 4},
              {"learning_rate", 2e-2},
              {"warmup_steps", 1},
              {"seq_len", 32},
              {"seed", 11},
              {"checkpoint_every_steps", 2},
              {"eval_every_steps", 4},
              {"data_selection", {{"method", "ENTROPY"}, {"keep_fraction", 0.25}}}}}};
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

TEST_F(DataSelectionProcessTest, ScoringLinesCountUpAndTheFileListsEveryExampleAndTheKeptOnes) {
  const std::string spec = WriteSpec(Spec());
  const TrainerRun run = Train(spec, dir_.File("out"));
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;

  const std::vector<nlohmann::json> scoring = run.OfType("scoring");
  ASSERT_GE(scoring.size(), 2u) << run.stdout_text;
  EXPECT_EQ(run.lines.front(), scoring.front()) << "scoring comes first";
  EXPECT_TRUE(AllBefore(run, "scoring", "started")) << run.stdout_text;
  EXPECT_EQ(scoring.front()["scored"], 0);
  int64_t previous = -1;
  for (const nlohmann::json& line : scoring) {
    EXPECT_EQ(line["total"], 64) << line.dump();
    EXPECT_EQ(line["method"], "entropy") << line.dump();
    EXPECT_TRUE(line["elapsed_s"].is_number()) << line.dump();
    EXPECT_GT(line["scored"].get<int64_t>(), previous) << line.dump();
    previous = line["scored"];
    EXPECT_EQ(line.contains("done"), &line == &scoring.back()) << line.dump();
  }
  EXPECT_EQ(scoring.back()["scored"], 64);
  EXPECT_EQ(scoring.back()["done"], true);
  EXPECT_EQ(scoring.back()["kept"], 16);
  // Steps count the kept examples only: 2 epochs x 16 / 4.
  EXPECT_EQ(run.OfType("started").at(0)["total_steps"], 8);
  EXPECT_EQ(run.OfType("progress").size(), 8u);
  EXPECT_EQ(run.lines.back()["type"], "done");

  const std::vector<nlohmann::json> file = ReadJsonLines(dir_.File("out/data_selection.jsonl"));
  ASSERT_EQ(file.size(), 64u);
  double lowest_kept = 1e9, highest_dropped = -1e9;
  for (size_t i = 0; i < file.size(); ++i) {
    EXPECT_EQ(file[i]["example"], i);
    EXPECT_EQ(file[i]["line"], i + 2) << "the blank first line counts";
    const double score = file[i]["score"];
    EXPECT_GT(score, 0.0);
    if (file[i]["kept"] == true) {
      lowest_kept = std::min(lowest_kept, score);
    } else {
      highest_dropped = std::max(highest_dropped, score);
    }
  }
  EXPECT_EQ(KeptOf(file).size(), 16u);
  EXPECT_GE(lowest_kept, highest_dropped) << "the kept examples are the highest scores";
  EXPECT_FALSE(fs::exists(dir_.File("out/data_selection.jsonl.tmp")));

  // The base model scores, not the adapter the run starts from: with --init-adapter (the
  // trained adapter above, B != 0) the scores are the same to the bit.
  const TrainerRun with_adapter =
      Train(spec, dir_.File("init"), {"--init-adapter", dir_.File("out/adapter")});
  ASSERT_EQ(with_adapter.exit_code, 0) << with_adapter.stderr_text;
  EXPECT_EQ(ReadJsonLines(dir_.File("init/data_selection.jsonl")), file);
  EXPECT_NE(with_adapter.OfType("eval").front()["eval_loss"],
            run.OfType("eval").front()["eval_loss"])
      << "the adapter did not change the model: this check proves nothing";
}

// Stopped after scoring, resumed in place and then elsewhere (--resume-from): no attempt scores
// again, each trains on the first attempt's kept examples, and the adapter is byte-identical to
// an unbroken run's. A resume with another selection is refused, naming it.
TEST_F(DataSelectionProcessTest, ResumedRunsDoNotScoreAgainAndEndByteIdentical) {
  nlohmann::json spec_json = Spec();
  spec_json["training"]["epochs"] = 3;  // 12 steps
  spec_json["training"]["data_selection"]["method"] = "LOSS";
  const std::string spec = WriteSpec(spec_json);
  const TrainerRun straight = Train(spec, dir_.File("straight"));
  ASSERT_EQ(straight.exit_code, 0) << straight.stderr_text;
  const std::vector<int64_t> kept =
      KeptOf(ReadJsonLines(dir_.File("straight/data_selection.jsonl")));
  ASSERT_EQ(kept.size(), 16u);

  TrainerRun first;
  {
    // Paced, so that the signal sent at step 3 lands before the run ends.
    ScopedEnv pace("TUNELEDGER_TRAIN_MIN_STEP_SECONDS", "0.3");
    first = Train(spec, dir_.File("attempt-1"), {}, [](const nlohmann::json& line) {
      return line["type"] == "progress" && line["step"] == 3;
    });
  }
  ASSERT_EQ(first.exit_code, 75) << first.stderr_text;
  EXPECT_FALSE(first.OfType("scoring").empty());
  EXPECT_EQ(KeptOf(ReadJsonLines(dir_.File("attempt-1/data_selection.jsonl"))), kept);
  const nlohmann::json stopped = first.OfType("stopped").at(0);
  EXPECT_LT(stopped["step"].get<int64_t>(), 12);
  const nlohmann::json header = nlohmann::json::parse(
      ReadTextFile(stopped["checkpoint"].get<std::string>() + "/header.json"));
  ASSERT_TRUE(header.contains("data_selection")) << header.dump();
  EXPECT_EQ(header["data_selection"]["kept"].get<std::vector<int64_t>>(), kept);
  EXPECT_EQ(header["data_selection"]["method"], "loss");

  TrainerRun second;
  {
    ScopedEnv pace("TUNELEDGER_TRAIN_MIN_STEP_SECONDS", "0.3");
    second = Train(spec, dir_.File("attempt-1"), {}, [&](const nlohmann::json& line) {
      return line["type"] == "progress" && line["step"] == stopped["step"].get<int64_t>() + 3;
    });
  }
  ASSERT_EQ(second.exit_code, 75) << second.stderr_text;
  EXPECT_TRUE(second.OfType("scoring").empty()) << second.stdout_text;
  EXPECT_EQ(second.lines.front()["type"], "started");
  EXPECT_EQ(second.lines.front()["total_steps"], 12);
  EXPECT_EQ(second.lines.front()["start_step"], stopped["step"]);
  const std::string second_checkpoint = second.OfType("stopped").at(0)["checkpoint"];

  // Another selection cannot resume it.
  nlohmann::json other = spec_json;
  other["training"]["data_selection"]["keep_fraction"] = 0.5;
  const TrainerRun refused = Train(WriteSpec(other, "other.json"), dir_.File("refused"),
                                   {"--resume-from", second_checkpoint});
  EXPECT_EQ(refused.exit_code, 1);
  ASSERT_FALSE(refused.lines.empty());
  EXPECT_EQ(refused.lines.back()["type"], "error");
  EXPECT_THAT(refused.lines.back()["message"].get<std::string>(),
              HasSubstr("written for a different job: data_selection was "
                        "{\"keep_fraction\":0.25,\"method\":\"loss\"}, now "
                        "{\"keep_fraction\":0.5,\"method\":\"loss\"}"));
  EXPECT_TRUE(refused.OfType("scoring").empty());

  const TrainerRun last = Train(spec, dir_.File("attempt-2"), {"--resume-from", second_checkpoint});
  ASSERT_EQ(last.exit_code, 0) << last.stderr_text;
  EXPECT_TRUE(last.OfType("scoring").empty()) << last.stdout_text;
  EXPECT_FALSE(fs::exists(dir_.File("attempt-2/data_selection.jsonl")));
  EXPECT_EQ(last.OfType("progress").back()["tokens"], straight.OfType("progress").back()["tokens"]);
  const std::string expected =
      ReadTextFile(dir_.File("straight/adapter/adapter_model.safetensors"));
  const std::string actual = ReadTextFile(dir_.File("attempt-2/adapter/adapter_model.safetensors"));
  ASSERT_FALSE(expected.empty());
  EXPECT_TRUE(expected == actual)
      << "adapter after two stops and two resumes differs from the unbroken run's: max abs diff "
      << MaxAdapterDiff(dir_.File("straight/adapter"), dir_.File("attempt-2/adapter"));
}

// SIGTERM while the base model scores: exit 75 with a `stopped` line at step 0 naming no
// checkpoint, nothing written; the next attempt in the same folder scores again and trains.
// Paced, so that scoring (16 batches) lasts 15 s: the signal sent at its first line lands
// during it.
TEST_F(DataSelectionProcessTest, AStopDuringScoringWritesNothingAndTheNextAttemptScoresAgain) {
  const std::string spec = WriteSpec(Spec());
  TrainerRun stopped;
  {
    ScopedEnv pace("TUNELEDGER_TRAIN_MIN_STEP_SECONDS", "1");
    stopped = Train(spec, dir_.File("out"), {},
                    [](const nlohmann::json& line) { return line["type"] == "scoring"; });
  }
  ASSERT_EQ(stopped.exit_code, 75) << stopped.stderr_text;
  ASSERT_EQ(stopped.lines.back()["type"], "stopped") << stopped.stdout_text;
  EXPECT_EQ(stopped.lines.back()["step"], 0);
  EXPECT_FALSE(stopped.lines.back().contains("checkpoint")) << stopped.stdout_text;
  EXPECT_TRUE(stopped.OfType("started").empty());
  for (const nlohmann::json& line : stopped.OfType("scoring")) {
    EXPECT_FALSE(line.contains("done")) << line.dump();
  }
  EXPECT_FALSE(fs::exists(dir_.File("out/checkpoints")));
  EXPECT_FALSE(fs::exists(dir_.File("out/data_selection.jsonl")));

  const TrainerRun again = Train(spec, dir_.File("out"));
  ASSERT_EQ(again.exit_code, 0) << again.stderr_text;
  ASSERT_FALSE(again.OfType("scoring").empty());
  EXPECT_EQ(again.OfType("scoring").back()["kept"], 16);
  EXPECT_EQ(ReadJsonLines(dir_.File("out/data_selection.jsonl")).size(), 64u);
}

// Short stories in the style of the bundled model's pre-training text (models/generate_data.py,
// World.story): text the base model predicts well. Deterministic.
std::string PretrainingStyleStory(std::mt19937& rng) {
  static const std::vector<std::string> kNames = {"Anna", "Ben", "Mia", "Tom", "Lea", "Sam",
                                                  "Ida",  "Max", "Eva", "Leo", "Zoe", "Noah"};
  static const std::vector<std::string> kAnimals = {"dog",   "cat",  "bird", "fox",
                                                    "horse", "duck", "goat", "frog"};
  static const std::vector<std::string> kColors = {"red",   "blue", "green", "yellow", "black",
                                                   "white", "pink", "brown", "orange", "gray"};
  static const std::vector<std::string> kPlaces = {"park",   "garden", "market", "school",
                                                   "forest", "river",  "farm",   "beach"};
  static const std::vector<std::string> kAdjectives = {"happy", "small", "big",   "old",
                                                       "young", "quick", "tired", "kind"};
  auto pick = [&](const std::vector<std::string>& words) { return words[rng() % words.size()]; };
  const std::string a = pick(kNames);
  std::string b = pick(kNames);
  while (b == a) b = pick(kNames);
  const std::string animal = pick(kAnimals);
  const std::string color = pick(kColors);
  const std::string article = color[0] == 'o' ? "an" : "a";
  return a + " and " + b + " went to the " + pick(kPlaces) + ". " + a + " saw " + article + " " +
         color + " " + animal + ". " + b + " said that the " + animal + " was " +
         pick(kAdjectives) + ".";
}

// On the bundled pretrained model, a training set of which half is text like its pre-training
// data (predictable) and half the demo's card task (unlike anything it saw): LOSS selection with
// keep_fraction 0.5 keeps exactly the task half, and fine-tuning on it reaches (within 3% of the
// loss reduction) the eval loss (on task examples) of fine-tuning on everything, for the same
// epochs, with fewer tokens and steps.
TEST(DataSelectionOnThePretrainedModelTest, KeepsTheInformativeHalfAndMatchesTheFullFineTune) {
  const fs::path repo(TUNELEDGER_SOURCE_DIR);
  std::istringstream task_lines(ReadTextFile((repo / "models/demo/train.jsonl").string()));
  std::istringstream valid_lines(ReadTextFile((repo / "models/demo/valid.jsonl").string()));
  constexpr int kTaskExamples = 64;
  TempDir dir;
  std::mt19937 rng(7);
  std::string train;
  std::vector<bool> is_task;  // by example index
  std::string line;
  for (int i = 0; i < kTaskExamples && std::getline(task_lines, line); ++i) {
    train += nlohmann::json{{"text", PretrainingStyleStory(rng)}}.dump() + "\n" + line + "\n";
    is_task.insert(is_task.end(), {false, true});
  }
  ASSERT_EQ(is_task.size(), 2u * kTaskExamples);
  std::string valid;
  for (int i = 0; i < 32 && std::getline(valid_lines, line); ++i) valid += line + "\n";
  WriteTextFile(dir.File("train.jsonl"), train);
  WriteTextFile(dir.File("valid.jsonl"), valid);

  nlohmann::json spec = {
      {"model_path", (repo / "models/tiny-llama").string()},
      {"train_path", dir.File("train.jsonl")},
      {"valid_path", dir.File("valid.jsonl")},
      {"lora",
       {{"r", 8},
        {"alpha", 16},
        {"dropout", 0.05},
        {"target_modules",
         {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}}}},
      {"training",
       {{"epochs", 4},
        {"batch_size", 8},
        {"learning_rate", 1e-2},
        {"warmup_steps", 2},
        {"seq_len", 128},
        {"seed", 1},
        {"checkpoint_every_steps", 1000},
        {"eval_every_steps", 1000}}}};
  WriteTextFile(dir.File("full.json"), spec.dump(2));
  spec["training"]["data_selection"] = {{"method", "LOSS"}, {"keep_fraction", 0.5}};
  WriteTextFile(dir.File("selected.json"), spec.dump(2));
  auto train_run = [&](const std::string& name) {
    return RunProcess(TrainerBinary(), {"--spec", dir.File(name + ".json"), "--out", dir.File(name),
                                        "--threads", "2"});
  };
  const TrainerRun full = train_run("full");
  ASSERT_EQ(full.exit_code, 0) << full.stderr_text;
  const TrainerRun selected = train_run("selected");
  ASSERT_EQ(selected.exit_code, 0) << selected.stderr_text;

  const std::vector<nlohmann::json> file = ReadJsonLines(dir.File("selected/data_selection.jsonl"));
  ASSERT_EQ(file.size(), is_task.size());
  int kept_task = 0;
  for (int64_t index : KeptOf(file)) kept_task += is_task[index] ? 1 : 0;
  const double base_loss = full.OfType("eval").front()["eval_loss"];
  const double full_loss = full.lines.back()["eval_loss"];
  const double selected_loss = selected.lines.back()["eval_loss"];
  const int64_t full_tokens = full.OfType("progress").back()["tokens"];
  const int64_t selected_tokens = selected.OfType("progress").back()["tokens"];
  std::cerr << "data selection: kept " << KeptOf(file).size() << ", of them " << kept_task << " of "
            << kTaskExamples << " task examples; eval loss base " << base_loss << ", full "
            << full_loss << ", selected " << selected_loss << "; tokens full " << full_tokens
            << ", selected " << selected_tokens << "; steps full "
            << full.OfType("started").at(0)["total_steps"] << ", selected "
            << selected.OfType("started").at(0)["total_steps"] << "\n";
  EXPECT_EQ(KeptOf(file).size(), static_cast<size_t>(kTaskExamples));
  EXPECT_GE(kept_task, kTaskExamples - 1) << "selection missed the informative examples";
  EXPECT_LT(full_loss, 0.5 * base_loss) << "the full fine-tune did not learn the task";
  // Within 3% of the full fine-tune's loss reduction from the base model. One run's eval loss
  // moves with the dropout draws: over seeds 1-4, selected - full was +0.052, -0.022, +0.054 and
  // -0.028 (a reduction from 4.36 of about 3.2), so a margin of 0.05 in loss passed or failed
  // by the draw alone.
  EXPECT_GE(base_loss - selected_loss, 0.97 * (base_loss - full_loss))
      << "training on the selection falls short of training on everything";
  EXPECT_LT(selected_tokens, full_tokens * 3 / 4);
  EXPECT_LT(selected.OfType("started").at(0)["total_steps"].get<int64_t>(),
            full.OfType("started").at(0)["total_steps"].get<int64_t>());
}

}  // namespace
}  // namespace tuneledger::train
