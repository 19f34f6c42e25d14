// Data selection (data_selection.h): scores -> kept set (top fraction, ceil, ties to the earlier
// example), the chunked score against the plain one on full logits, the batched and padded
// scoring of a random model against a plain per-example computation, the data_selection.jsonl
// file and the resume check.
//
// Shape legend: B batch, T tokens, D hidden, V vocab.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "lm/trainer_error.h"
#include "tests/testing/temp_dir.h"
#include "tests/trainer/recipe_test_util.h"
#include "worker/trainer/model/model_loader.h"
#include "worker/trainer/recipe/data_selection.h"
#include "worker/trainer/recipe/stop_signal.h"

namespace tuneledger::train {
namespace {

using ::testing::HasSubstr;
using ::tuneledger::testing::TempDir;
using Indices = std::vector<int64_t>;

TEST(SelectTopFractionTest, KeepsTheCeilOfTheFractionOfHighestScoresTiesToTheEarlierExample) {
  //                                0    1    2    3    4    5
  const std::vector<double> scores{0.5, 2.0, 1.0, 2.0, 0.1, 1.0};
  EXPECT_EQ(SelectTopFraction(scores, 0.5), (Indices{1, 2, 3})) << "3 of 6; 2 beats 5 (tie)";
  EXPECT_EQ(SelectTopFraction(scores, 0.34), (Indices{1, 2, 3})) << "ceil(2.04) = 3";
  EXPECT_EQ(SelectTopFraction(scores, 0.3), (Indices{1, 3})) << "ceil(1.8) = 2";
  EXPECT_EQ(SelectTopFraction(scores, 0.01), (Indices{1})) << "at least one; 1 beats 3 (tie)";
  EXPECT_EQ(SelectTopFraction(scores, 1.0), (Indices{0, 1, 2, 3, 4, 5}));
  // 0.7 x 10 is 7.000000000000001 in binary: still 7, not 8.
  const std::vector<double> ten{9, 8, 7, 6, 5, 4, 3, 2, 1, 0};
  EXPECT_EQ(SelectTopFraction(ten, 0.7), (Indices{0, 1, 2, 3, 4, 5, 6}));
  // All equal: the earliest ones.
  EXPECT_EQ(SelectTopFraction(std::vector<double>(5, 1.0), 0.4), (Indices{0, 1}));
  EXPECT_THROW(SelectTopFraction(scores, 0.0), TrainError);
  EXPECT_THROW(SelectTopFraction(scores, 1.5), TrainError);
}

// labels [B,T] with about a third ignored; row 1 has no target at all.
torch::Tensor Labels(int64_t batch, int64_t tokens, int64_t vocab) {
  torch::Tensor labels = torch::randint(0, vocab, {batch, tokens}, torch::kInt64);  // [B,T]
  labels.masked_fill_(torch::rand({batch, tokens}) < 0.33, kIgnoreLabel);
  labels[1].fill_(kIgnoreLabel);
  return labels;
}

TEST(ExampleScoresTest, ChunkedScoresMatchThePlainReferenceOnFullLogits) {
  torch::manual_seed(5);
  const int64_t batch = 4, tokens = 9, dim = 16, vocab = 50;
  const torch::Tensor hidden = torch::randn({batch, tokens, dim});  // [B,T,D]
  const torch::Tensor weight = torch::randn({vocab, dim}) * 0.7;    // [V,D]
  const torch::Tensor labels = Labels(batch, tokens, vocab);        // [B,T]
  const torch::Tensor logits = torch::matmul(hidden, weight.t());   // [B,T,V]
  for (SelectionMethod method : {SelectionMethod::kEntropy, SelectionMethod::kLoss}) {
    const torch::Tensor expected = ExampleScoresFromLogits(logits, labels, method);  // [B]
    // Chunks of 3 rows (150 / 50): several chunks, the last one short.
    const torch::Tensor actual = ExampleScores(hidden, weight, labels, method, 150);  // [B]
    ASSERT_EQ(actual.sizes(), expected.sizes());
    const double diff = (actual - expected).abs().max().item<double>();
    EXPECT_LE(diff, 1e-5) << SelectionMethodName(method) << ": expected " << expected << "\nactual "
                          << actual << "\nmax diff " << diff;
    EXPECT_EQ(actual[1].item<double>(), 0.0) << "a row without a target scores 0";
    EXPECT_GT(actual[0].item<double>(), 0.0);
  }
}

// A random tiny Llama (byte-tokenizer sized vocab, GQA, 2 layers) with LoRA on the attention.
LlamaForCausalLM RandomModel() {
  const LlamaConfig config =
      LlamaConfig::FromJson(nlohmann::json{{"architectures", {"LlamaForCausalLM"}},
                                           {"model_type", "llama"},
                                           {"vocab_size", 40},
                                           {"hidden_size", 32},
                                           {"intermediate_size", 48},
                                           {"num_hidden_layers", 2},
                                           {"num_attention_heads", 4},
                                           {"num_key_value_heads", 2},
                                           {"rms_norm_eps", 1e-5},
                                           {"max_position_embeddings", 64},
                                           {"tie_word_embeddings", false},
                                           {"initializer_range", 0.3},
                                           {"bos_token_id", 1},
                                           {"eos_token_id", 2},
                                           {"pad_token_id", 0}});
  const LoraOptions lora{4, 8.0, 0.5, {"q_proj", "v_proj"}};
  return CreateRandom(config, ModelOptions{}, /*seed=*/9, &lora);
}

// Examples of 2..13 tokens whose first few labels are ignored (a prompt), ids in [3, 40).
std::vector<TokenizedExample> RandomExamples(int count) {
  torch::manual_seed(13);
  std::vector<TokenizedExample> examples;
  for (int i = 0; i < count; ++i) {
    const int64_t length = torch::randint(2, 14, {1}).item<int64_t>();
    const int64_t prompt = torch::randint(0, length - 1, {1}).item<int64_t>();
    TokenizedExample example;
    for (int64_t t = 0; t < length; ++t) {
      const int64_t id = torch::randint(3, 40, {1}).item<int64_t>();
      example.input_ids.push_back(id);
      example.labels.push_back(t <= prompt ? kIgnoreLabel : id);
    }
    examples.push_back(example);
  }
  return examples;
}

// The score written out plainly: one example alone, full logits, a loop over positions, double.
double PlainScore(LlamaForCausalLM& model, const TokenizedExample& example,
                  SelectionMethod method) {
  torch::NoGradGuard no_grad;
  model->eval();
  const auto length = static_cast<int64_t>(example.input_ids.size());
  const torch::Tensor ids = torch::tensor(example.input_ids).reshape({1, length});  // [1,T]
  const torch::Tensor logits = model->forward(ids)[0].to(torch::kFloat64);          // [T,V]
  double sum = 0;
  int count = 0;
  for (int64_t t = 0; t + 1 < length; ++t) {
    const int64_t target = example.labels[t + 1];
    if (target == kIgnoreLabel) continue;
    const torch::Tensor p = torch::softmax(logits[t], 0);  // [V]
    sum += method == SelectionMethod::kEntropy ? -(p * p.log()).sum().item<double>()
                                               : -std::log(p[target].item<double>());
    ++count;
  }
  return count > 0 ? sum / count : 0.0;
}

// Batches of 3 sorted by length and right-padded agree with each example scored alone: padding
// and batch neighbours change nothing, and the scores come back in the examples' order.
TEST(ScoreExamplesTest, BatchedPaddedScoresMatchAPlainPerExampleComputationOnARandomModel) {
  LlamaForCausalLM model = RandomModel();
  model->train();
  const std::vector<TokenizedExample> examples = RandomExamples(11);
  for (SelectionMethod method : {SelectionMethod::kEntropy, SelectionMethod::kLoss}) {
    std::vector<int64_t> progress;
    const std::optional<std::vector<double>> scores = ScoreExamples(
        model, examples, ScoringOptions{method, 3, /*pad_id=*/0, torch::kCPU}, [&](int64_t scored) {
          progress.push_back(scored);
          return true;
        });
    ASSERT_TRUE(scores.has_value());
    EXPECT_TRUE(model->is_training()) << "scoring must leave the model in train mode";
    EXPECT_EQ(progress, (Indices{3, 6, 9, 11}));
    ASSERT_EQ(scores->size(), examples.size());
    for (size_t i = 0; i < examples.size(); ++i) {
      const double expected = PlainScore(model, examples[i], method);
      EXPECT_NEAR((*scores)[i], expected, 1e-4)
          << SelectionMethodName(method) << " example " << i << " of "
          << examples[i].input_ids.size() << " tokens";
    }
    model->train();
  }
  // after_batch says stop: no scores.
  int calls = 0;
  EXPECT_FALSE(ScoreExamples(model, examples,
                             ScoringOptions{SelectionMethod::kLoss, 4, 0, torch::kCPU},
                             [&](int64_t) { return ++calls < 2; })
                   .has_value());
  EXPECT_EQ(calls, 2);
  EXPECT_TRUE(model->is_training());
}

std::vector<nlohmann::json> Lines(const std::string& text) {
  std::istringstream in(text);
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

// The whole pass: a first and a last `scoring` line, the file, the kept set; a stop request
// ends it after the batch in flight with nothing written.
TEST(SelectTrainingExamplesTest, ReportsScoresSelectsAndWritesOrStopsWritingNothing) {
  TempDir dir;
  LlamaForCausalLM model = RandomModel();
  TokenizedDataset train;
  train.examples = RandomExamples(10);
  for (int64_t i = 0; i < 10; ++i) train.source_lines.push_back(2 * i + 1);
  DataSelectionJob job;
  job.scoring = ScoringOptions{SelectionMethod::kLoss, 4, 0, torch::kCPU};
  job.keep_fraction = 0.3;
  job.output_path = dir.File("data_selection.jsonl");
  job.process_start = std::chrono::steady_clock::now();

  std::ostringstream out;
  ProgressReporter reporter(out);
  const std::optional<DataSelectionState> selection =
      SelectTrainingExamples(model, train, job, reporter);
  ASSERT_TRUE(selection.has_value());
  EXPECT_EQ(selection->method, "loss");
  EXPECT_EQ(selection->keep_fraction, 0.3);
  ASSERT_EQ(selection->kept.size(), 3u);
  const std::vector<nlohmann::json> lines = Lines(out.str());
  ASSERT_GE(lines.size(), 2u) << out.str();
  EXPECT_EQ(lines.front()["type"], "scoring");
  EXPECT_EQ(lines.front()["scored"], 0);
  EXPECT_EQ(lines.front()["total"], 10);
  EXPECT_EQ(lines.front()["method"], "loss");
  EXPECT_EQ(lines.back()["scored"], 10);
  EXPECT_EQ(lines.back()["done"], true);
  EXPECT_EQ(lines.back()["kept"], 3);
  const std::vector<nlohmann::json> file = Lines(testing::ReadTextFile(job.output_path));
  ASSERT_EQ(file.size(), 10u);
  std::vector<double> scores;
  for (const nlohmann::json& line : file) scores.push_back(line["score"]);
  EXPECT_EQ(selection->kept, SelectTopFraction(scores, 0.3));
  EXPECT_EQ(file[4]["line"], 9);

  std::filesystem::remove(job.output_path);
  std::ostringstream stopped_out;
  ProgressReporter stopped_reporter(stopped_out);
  RequestStop();
  const std::optional<DataSelectionState> stopped =
      SelectTrainingExamples(model, train, job, stopped_reporter);
  ClearStopRequest();
  EXPECT_FALSE(stopped.has_value());
  EXPECT_EQ(Lines(stopped_out.str()).size(), 1u) << "only the first line: " << stopped_out.str();
  EXPECT_FALSE(std::filesystem::exists(job.output_path));
}

// TUNELEDGER_TRAIN_MIN_STEP_SECONDS paces scoring too: 3 batches, the first two last >= 0.2 s.
// A lower bound, which no machine's speed can break.
TEST(SelectTrainingExamplesTest, MinBatchDurationPacesEveryScoringBatchButTheLast) {
  TempDir dir;
  LlamaForCausalLM model = RandomModel();
  TokenizedDataset train;
  train.examples = RandomExamples(10);
  DataSelectionJob job;
  job.scoring = ScoringOptions{SelectionMethod::kEntropy, 4, 0, torch::kCPU};
  job.keep_fraction = 0.5;
  job.output_path = dir.File("data_selection.jsonl");
  job.min_batch_duration = std::chrono::duration<double>(0.2);
  job.process_start = std::chrono::steady_clock::now();
  std::ostringstream out;
  ProgressReporter reporter(out);
  ASSERT_TRUE(SelectTrainingExamples(model, train, job, reporter).has_value());
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - job.process_start).count();
  EXPECT_GE(elapsed, 0.4);
  EXPECT_GE(Lines(out.str()).back()["elapsed_s"].get<double>(), 0.4) << out.str();
}

TEST(DataSelectionFileTest, OneLinePerExampleWithLineScoreAndKept) {
  TempDir dir;
  const std::string path = dir.File("out/data_selection.jsonl");  // out/ does not exist yet
  WriteDataSelectionFile(path, {0.5, 2.25, 1.0}, {1, 2}, {1, 3, 4});
  std::istringstream lines(testing::ReadTextFile(path));
  std::vector<nlohmann::json> parsed;
  for (std::string line; std::getline(lines, line);) parsed.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(parsed.size(), 3u);
  EXPECT_EQ(parsed[0],
            (nlohmann::json{{"example", 0}, {"line", 1}, {"score", 0.5}, {"kept", false}}));
  EXPECT_EQ(parsed[1],
            (nlohmann::json{{"example", 1}, {"line", 3}, {"score", 2.25}, {"kept", true}}));
  EXPECT_EQ(parsed[2],
            (nlohmann::json{{"example", 2}, {"line", 4}, {"score", 1.0}, {"kept", true}}));
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

std::string ResumeError(const std::optional<DataSelectionState>& saved, SelectionMethod method,
                        double keep_fraction, int64_t examples = 10) {
  try {
    CheckResumedSelection("/c/step-5", saved, method, keep_fraction, examples);
  } catch (const TrainError& e) {
    return e.what();
  }
  return "";
}

TEST(CheckResumedSelectionTest, ACheckpointWithAnotherSelectionIsRefusedNamingTheDifference) {
  const DataSelectionState entropy_half{"entropy", 0.5, {1, 4, 6, 7, 9}};
  EXPECT_EQ(ResumeError(entropy_half, SelectionMethod::kEntropy, 0.5), "");
  EXPECT_EQ(ResumeError(std::nullopt, SelectionMethod::kNone, 0), "");
  EXPECT_THAT(ResumeError(entropy_half, SelectionMethod::kLoss, 0.5),
              HasSubstr("checkpoint /c/step-5: written for a different job: data_selection was "
                        "{\"keep_fraction\":0.5,\"method\":\"entropy\"}, now "
                        "{\"keep_fraction\":0.5,\"method\":\"loss\"}"));
  EXPECT_THAT(ResumeError(entropy_half, SelectionMethod::kEntropy, 0.25),
              HasSubstr("now {\"keep_fraction\":0.25,"));
  EXPECT_THAT(ResumeError(std::nullopt, SelectionMethod::kEntropy, 0.5),
              HasSubstr("data_selection was \"none\", now {"));
  EXPECT_THAT(ResumeError(entropy_half, SelectionMethod::kNone, 0),
              HasSubstr("data_selection was {\"keep_fraction\":0.5,\"method\":\"entropy\"}, now "
                        "\"none\""));
  EXPECT_THAT(ResumeError(entropy_half, SelectionMethod::kEntropy, 0.5, /*examples=*/8),
              HasSubstr("data_selection.kept holds example 9 out of order or beyond the 8"));
  EXPECT_THAT(
      ResumeError(DataSelectionState{"entropy", 0.5, {3, 3}}, SelectionMethod::kEntropy, 0.5),
      HasSubstr("holds example 3 out of order"));
}

}  // namespace
}  // namespace tuneledger::train
