// JSONL data formats, loss masking, chat template, truncation, bad lines with file:line.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "tests/trainer/recipe_test_util.h"
#include "worker/trainer/batcher.h"
#include "worker/trainer/byte_tokenizer.h"
#include "worker/trainer/causal_lm_loss.h"
#include "worker/trainer/chat_template.h"
#include "worker/trainer/jsonl_dataset.h"
#include "worker/trainer/trainer_error.h"

namespace tuneledger::train {
namespace {

using ::testing::HasSubstr;
using testing::TempDir;
using testing::WriteTextFile;

using IdList = std::vector<int64_t>;
constexpr int64_t kIgnore = kIgnoreLabel;
const ByteTokenizer kBytes;

std::vector<int64_t> Ids(const std::string& text) { return kBytes.Encode(text); }

TokenizedExample Tokenize(const std::string& line, int seq_len = 256) {
  return TokenizeRecord(nlohmann::json::parse(line), kBytes, DatasetOptions{seq_len, 0});
}

std::string ErrorOfFile(const std::string& content, const std::string& name = "train.jsonl") {
  TempDir dir;
  WriteTextFile(dir.File(name), content);
  try {
    LoadJsonlDataset(dir.File(name), kBytes, DatasetOptions{64, 0});
  } catch (const TrainError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(JsonlDatasetTest, TextTrainsOnEveryTokenWithBosAndEos) {
  const TokenizedExample example = Tokenize(R"({"text": "hi"})");
  EXPECT_EQ(example.input_ids, (IdList{1, 3 + 'h', 3 + 'i', 2}));
  EXPECT_EQ(example.labels, example.input_ids);
}

TEST(JsonlDatasetTest, PromptTokensCarryNoLabels) {
  const TokenizedExample example = Tokenize(R"({"prompt": "ab", "completion": "cd"})");
  EXPECT_EQ(example.input_ids, (IdList{1, 3 + 'a', 3 + 'b', 3 + 'c', 3 + 'd', 2}));
  EXPECT_EQ(example.labels, (IdList{kIgnore, kIgnore, kIgnore, 3 + 'c', 3 + 'd', 2}));
}

// The loss itself: logits at positions that predict prompt tokens get no gradient, and
// changing them leaves the loss unchanged; positions that predict completion tokens do.
TEST(JsonlDatasetTest, PromptTokensCarryNoLoss) {
  const TokenizedExample example = Tokenize(R"({"prompt": "abc", "completion": "de"})");
  const Batch batch = CollateBatch({example}, {0}, kBytes.pad_id());
  const int64_t T = batch.input_ids.size(1);
  torch::manual_seed(0);
  torch::Tensor logits = torch::randn({1, T, kBytes.vocab_size()}, torch::requires_grad());
  torch::Tensor loss = CausalLmLossSum(logits, batch.labels);
  loss.backward();
  // Position t predicts token t+1. Tokens: BOS a b c d e EOS -> positions 0..2 predict a, b, c
  // (prompt), positions 3..5 predict d, e, EOS.
  const torch::Tensor grad_norm = logits.grad().abs().sum(-1)[0];  // [T]
  for (int64_t t = 0; t < 3; ++t) {
    EXPECT_EQ(grad_norm[t].item<double>(), 0.0) << "position " << t << " predicts a prompt token";
  }
  for (int64_t t = 3; t < 6; ++t) {
    EXPECT_GT(grad_norm[t].item<double>(), 0.0) << "position " << t << " predicts the completion";
  }
  EXPECT_EQ(grad_norm[6].item<double>(), 0.0) << "the last position predicts nothing";
  EXPECT_EQ(batch.targets, 3);

  // Independent check of the value: cross-entropy of the three completion targets.
  torch::NoGradGuard no_grad;
  const torch::Tensor log_probs = torch::log_softmax(logits[0], -1);
  const double expected =
      -(log_probs[3][3 + 'd'] + log_probs[4][3 + 'e'] + log_probs[5][2]).item<double>();
  EXPECT_NEAR(loss.item<double>(), expected, 1e-4);
}

TEST(JsonlDatasetTest, ChatTemplateTrainsOnAssistantTurnsOnly) {
  const TokenizedExample example = Tokenize(
      R"({"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "U"},
                       {"role": "assistant", "content": "A"}]})");
  // Rebuild the documented template independently.
  std::vector<int64_t> ids = {1};
  std::vector<int64_t> labels = {kIgnore};
  auto add = [&](const std::string& text, bool trains) {
    for (int64_t id : Ids(text)) {
      ids.push_back(id);
      labels.push_back(trains ? id : kIgnore);
    }
  };
  add("<|system|>\n", false);
  add("S<|end|>\n", false);
  add("<|user|>\n", false);
  add("U<|end|>\n", false);
  add("<|assistant|>\n", false);
  add("A<|end|>\n", true);
  ids.push_back(2);
  labels.push_back(2);
  EXPECT_EQ(example.input_ids, ids);
  EXPECT_EQ(example.labels, labels);
  EXPECT_EQ(ChatGenerationPrompt({{"user", "U"}}), "<|user|>\nU<|end|>\n<|assistant|>\n");
}

TEST(JsonlDatasetTest, PreTokenizedIsUsedAsGiven) {
  TokenizedExample example = Tokenize(R"({"input_ids": [5, 6, 7]})");
  EXPECT_EQ(example.input_ids, (IdList{5, 6, 7}));
  EXPECT_EQ(example.labels, (IdList{5, 6, 7}));
  example = Tokenize(R"({"input_ids": [5, 6, 7], "labels": [-100, -100, 7]})");
  EXPECT_EQ(example.labels, (IdList{kIgnore, kIgnore, 7}));
}

TEST(JsonlDatasetTest, TruncatesToSeqLen) {
  bool truncated = false;
  TokenizedExample example = TokenizeRecord(nlohmann::json::parse(R"({"text": "abcdefgh"})"),
                                            kBytes, DatasetOptions{5, 0}, &truncated);
  EXPECT_TRUE(truncated);
  EXPECT_EQ(example.input_ids, (IdList{1, 3 + 'a', 3 + 'b', 3 + 'c', 3 + 'd'}));
  EXPECT_EQ(example.labels.size(), 5u);

  TempDir dir;
  // The second line's prompt fills seq_len: nothing left to train on, so it is dropped.
  WriteTextFile(dir.File("d.jsonl"), R"({"text": "abcdefgh"})"
                                     "\n\n"
                                     R"({"prompt": "abcdefgh", "completion": "x"})"
                                     "\n");
  const TokenizedDataset dataset = LoadJsonlDataset(dir.File("d.jsonl"), kBytes, {5, 0});
  EXPECT_EQ(dataset.lines, 2);
  EXPECT_EQ(dataset.examples.size(), 1u);
  EXPECT_EQ(dataset.truncated, 2);
  EXPECT_EQ(dataset.dropped_no_targets, 1);
}

TEST(JsonlDatasetTest, BadLinesNameFileAndLine) {
  const std::string good = R"({"text": "ok"})";
  EXPECT_THAT(ErrorOfFile(good + "\n" + good + "\n{broken\n"),
              HasSubstr("train.jsonl:3: not valid JSON"));
  EXPECT_THAT(ErrorOfFile(good + "\n" + R"({"txt": "x"})" + "\n"),
              HasSubstr("train.jsonl:2: no known fields"));
  EXPECT_THAT(ErrorOfFile(R"({"text": 5})"), HasSubstr("train.jsonl:1: text: must be a string"));
  EXPECT_THAT(ErrorOfFile(R"({"text": "a", "prompt": "b", "completion": "c"})"),
              HasSubstr("train.jsonl:1: mixes formats"));
  EXPECT_THAT(ErrorOfFile(R"({"prompt": "b"})"), HasSubstr(":1: prompt and completion"));
  EXPECT_THAT(ErrorOfFile(R"({"messages": [{"role": "robot", "content": "x"}]})"),
              HasSubstr(":1: messages[0].role"));
  EXPECT_THAT(ErrorOfFile(R"({"messages": [{"role": "user", "content": "x"}]})"),
              HasSubstr(":1: messages: no assistant turn"));
  EXPECT_THAT(ErrorOfFile(R"({"input_ids": [1, 999]})"),
              HasSubstr(":1: input_ids[1]: token id 999"));
  EXPECT_THAT(ErrorOfFile(R"({"input_ids": [1, 2], "labels": [1]})"),
              HasSubstr(":1: labels: length"));
  EXPECT_THAT(ErrorOfFile("[1, 2]"), HasSubstr(":1: each line must be a JSON object"));
  EXPECT_THAT(ErrorOfFile("\n\n"), HasSubstr("no example with a token to train on"));
  EXPECT_THAT(ErrorOfFile(good + "\n" + std::string("\xff\xfe") + "\n"),
              HasSubstr("train.jsonl:2:"));
}

TEST(JsonlDatasetTest, MissingFileIsAnError) {
  try {
    LoadJsonlDataset("/nonexistent/train.jsonl", kBytes, {16, 0});
    FAIL() << "expected TrainError";
  } catch (const TrainError& e) {
    EXPECT_THAT(e.what(), HasSubstr("/nonexistent/train.jsonl: cannot open"));
  }
}

}  // namespace
}  // namespace tuneledger::train
