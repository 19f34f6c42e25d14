// JSONL data formats, loss masking, the built-in chat template and a model's own (SmolLM2's,
// through HfTokenizer), truncation, bad lines with file:line.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>

#include "lm/data/byte_tokenizer.h"
#include "lm/data/chat_template.h"
#include "lm/data/jsonl_dataset.h"
#include "lm/text/hf_chat_template.h"
#include "lm/text/hf_tokenizer.h"
#include "lm/trainer_error.h"
#include "tests/testing/temp_dir.h"
#include "tests/trainer/recipe_test_util.h"
#include "worker/trainer/recipe/batcher.h"
#include "worker/trainer/recipe/causal_lm_loss.h"

namespace tuneledger::train {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing::WriteSmolLM2StyleTokenizer;
using testing::WriteTextFile;
using ::tuneledger::testing::TempDir;

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

// A tokenizer whose model takes no BOS (Qwen2's: tokenizer_config.json names none).
class NoBosTokenizer : public ByteTokenizer {
 public:
  bool add_bos() const override { return false; }
  int64_t bos_id() const override { return -1; }
};

TEST(JsonlDatasetTest, BosFollowsTheTokenizerAndEosAlwaysEnds) {
  const NoBosTokenizer tokenizer;
  const DatasetOptions options{256, 0};
  EXPECT_EQ(
      TokenizeRecord(nlohmann::json::parse(R"({"text": "hi"})"), tokenizer, options).input_ids,
      (IdList{3 + 'h', 3 + 'i', 2}));
  const TokenizedExample example = TokenizeRecord(
      nlohmann::json::parse(R"({"prompt": "a", "completion": "b"})"), tokenizer, options);
  EXPECT_EQ(example.input_ids, (IdList{3 + 'a', 3 + 'b', 2}));
  EXPECT_EQ(example.labels, (IdList{kIgnore, 3 + 'b', 2}));
}

TEST(JsonlDatasetTest, PromptTokensCarryNoLabels) {
  const TokenizedExample example = Tokenize(R"({"prompt": "ab", "completion": "cd"})");
  EXPECT_EQ(example.input_ids, (IdList{1, 3 + 'a', 3 + 'b', 3 + 'c', 3 + 'd', 2}));
  EXPECT_EQ(example.labels, (IdList{kIgnore, kIgnore, kIgnore, 3 + 'c', 3 + 'd', 2}));
}

// The loss itself: positions that predict prompt tokens get no gradient, and changing them
// leaves the loss unchanged; positions that predict completion tokens do.
TEST(JsonlDatasetTest, PromptTokensCarryNoLoss) {
  const TokenizedExample example = Tokenize(R"({"prompt": "abc", "completion": "de"})");
  const Batch batch = CollateBatch({example}, {0}, kBytes.pad_id());
  const int64_t T = batch.input_ids.size(1);
  torch::manual_seed(0);
  torch::Tensor hidden = torch::randn({1, T, 16}, torch::requires_grad());  // [B,T,D]
  torch::Tensor weight = torch::randn({kBytes.vocab_size(), 16});           // [V,D]
  torch::Tensor loss = CausalLmLossSum(hidden, weight, batch.labels);
  loss.backward();
  // Position t predicts token t+1. Tokens: BOS a b c d e EOS -> positions 0..2 predict a, b, c
  // (prompt), positions 3..5 predict d, e, EOS.
  const torch::Tensor grad_norm = hidden.grad().abs().sum(-1)[0];  // [T]
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
  const torch::Tensor log_probs = torch::log_softmax(torch::matmul(hidden[0], weight.t()), -1);
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

// A folder with the SmolLM2-style tokenizer (ids: <|endoftext|> 0, <|im_start|> 1, <|im_end|> 2,
// byte b 3 + b) and a chat template, loaded as the trainer loads them.
class ModelTemplateFolder {
 public:
  explicit ModelTemplateFolder(const nlohmann::json& config = nlohmann::json::object()) {
    WriteSmolLM2StyleTokenizer(dir_.path(), config);
    tokenizer_ = HfTokenizer::FromModelDir(dir_.path());
    chat_template_ = HfChatTemplate::FromModelDir(dir_.path());
  }
  TokenizedExample Tokenize(const std::string& line) const {
    return TokenizeRecord(nlohmann::ordered_json::parse(line), *tokenizer_,
                          DatasetOptions{512, 0, chat_template_.get()});
  }
  const HfTokenizer& tokenizer() const { return *tokenizer_; }
  const HfChatTemplate* chat_template() const { return chat_template_.get(); }

 private:
  TempDir dir_;
  std::unique_ptr<HfTokenizer> tokenizer_;
  std::unique_ptr<HfChatTemplate> chat_template_;
};

// Expected ids and labels, built by hand: text as bytes, specials by id.
struct Expected {
  IdList ids;
  IdList labels;
  void Text(const std::string& text, bool trains = false) {
    for (int64_t id : Ids(text)) Special(id, trains);
  }
  void Special(int64_t id, bool trains = false) {
    ids.push_back(id);
    labels.push_back(trains ? id : kIgnore);
  }
};
constexpr int64_t kImStart = 1;
constexpr int64_t kImEnd = 2;

TEST(JsonlDatasetTest, SmolLM2TemplateTrainsOnAssistantContentAndItsEndOfTurn) {
  const ModelTemplateFolder folder;
  ASSERT_NE(folder.chat_template(), nullptr);
  const std::string messages =
      R"([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi é"},
          {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Bye"},
          {"role": "assistant", "content": "Bye 👋"}])";
  const TokenizedExample example = folder.Tokenize(R"({"messages": )" + messages + "}");
  Expected want;  // no BOS: SmolLM2's add_bos_token is false; no extra EOS: <|im_end|> is it
  for (const auto& [role, content] :
       std::vector<std::pair<std::string, std::string>>{{"system", "Be brief."},
                                                        {"user", "Hi é"},
                                                        {"assistant", "Hello!"},
                                                        {"user", "Bye"},
                                                        {"assistant", "Bye 👋"}}) {
    const bool assistant = role == "assistant";
    want.Special(kImStart);
    want.Text(role + "\n");
    want.Text(content, assistant);
    want.Special(kImEnd, assistant);
    want.Text("\n");
  }
  EXPECT_EQ(example.input_ids, want.ids);
  EXPECT_EQ(example.labels, want.labels);
  // The ids are the tokenizer's for the whole rendered text, as transformers'
  // apply_chat_template(messages, tokenize=True) makes them.
  EXPECT_EQ(example.input_ids, folder.tokenizer().Encode(folder.chat_template()->Render(
                                   jinja::FromJson(nlohmann::json::parse(messages)), false)));
}

TEST(JsonlDatasetTest, SmolLM2TemplateDefaultSystemPromptCarriesNoLoss) {
  const ModelTemplateFolder folder;
  const TokenizedExample example = folder.Tokenize(
      R"({"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]})");
  EXPECT_THAT(folder.tokenizer().Decode(example.input_ids),
              HasSubstr("You are a helpful AI assistant named SmolLM"));
  IdList trained;
  for (int64_t label : example.labels) {
    if (label != kIgnore) trained.push_back(label);
  }
  EXPECT_EQ(trained, (IdList{3 + '4', kImEnd}));
}

TEST(JsonlDatasetTest, ModelTemplateBosIsNeitherDoubledNorMissing) {
  // The template writes bos_token itself: the text's BOS is the only one.
  const ModelTemplateFolder writes_bos(
      {{"bos_token", "<|endoftext|>"},
       {"add_bos_token", true},
       {"chat_template",
        "{{ bos_token }}{% for m in messages %}{{ m.role }}: {{ m.content }}{{ eos_token }}"
        "{% endfor %}"}});
  const std::string line =
      R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]})";
  const TokenizedExample example = writes_bos.Tokenize(line);
  ASSERT_GE(example.input_ids.size(), 2u);
  EXPECT_EQ(example.input_ids[0], 0);
  EXPECT_EQ(std::count(example.input_ids.begin(), example.input_ids.end(), 0), 1);
  // The template does not: the tokenizer's BOS is prepended; the last turn has no EOS, so one
  // is appended and trains.
  const ModelTemplateFolder no_bos(
      {{"bos_token", "<|endoftext|>"},
       {"add_bos_token", true},
       {"chat_template", "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"}});
  const TokenizedExample plain = no_bos.Tokenize(line);
  Expected want;  // no generation prompt in this template: the role label is the turn's
  want.Special(0);
  want.Text("user: a\n");
  want.Text("assistant: b", true);
  want.Text("\n");
  want.Special(kImEnd, true);
  EXPECT_EQ(plain.input_ids, want.ids);
  EXPECT_EQ(plain.labels, want.labels);
}

TEST(JsonlDatasetTest, ModelTemplateErrorsNameTheLine) {
  TempDir dir;
  WriteSmolLM2StyleTokenizer(
      dir.path(), {{"chat_template",
                    "{% if messages[0].role != 'user' %}{{ raise_exception('first must be user') }}"
                    "{% endif %}{% for m in messages %}{{ m.content }}{% endfor %}"}});
  const auto tokenizer = HfTokenizer::FromModelDir(dir.path());
  const auto chat_template = HfChatTemplate::FromModelDir(dir.path());
  WriteTextFile(
      dir.File("train.jsonl"),
      R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]})"
      "\n"
      R"({"messages": [{"role": "system", "content": "s"}, {"role": "assistant", "content": "b"}]})"
      "\n");
  try {
    LoadJsonlDataset(dir.File("train.jsonl"), *tokenizer,
                     DatasetOptions{64, 0, chat_template.get()});
    FAIL() << "loaded";
  } catch (const TrainError& e) {
    EXPECT_THAT(e.what(), HasSubstr("train.jsonl:2: "));
    EXPECT_THAT(e.what(), HasSubstr("tokenizer_config.json: chat_template: raise_exception at "
                                    "line 1: first must be user"));
  }
  // A template the trainer could not load fails "messages" lines with its reason, and only them.
  DatasetOptions unusable{64, 0};
  unusable.chat_template_error =
      "m/tokenizer_config.json: chat_template: unsupported Jinja "
      "construct 'filter' at line 3";
  EXPECT_NO_THROW(TokenizeRecord(nlohmann::json::parse(R"({"prompt": "a", "completion": "b"})"),
                                 *tokenizer, unusable));
  try {
    TokenizeRecord(
        nlohmann::json::parse(
            R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]})"),
        *tokenizer, unusable);
    FAIL() << "tokenized";
  } catch (const TrainError& e) {
    EXPECT_EQ(std::string(e.what()), unusable.chat_template_error);
  }
}

// json.loads keeps a line's key order and a template can print it (tojson of a tool call's
// arguments): the template sees the file's order, not nlohmann::json's sorted one.
TEST(JsonlDatasetTest, ModelTemplateSeesKeysInFileOrder) {
  const ModelTemplateFolder folder(
      nlohmann::json{{"chat_template", "{% for m in messages %}{{ m | tojson }}\n{% endfor %}"}});
  const TokenizedExample example = folder.Tokenize(
      R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b", )"
      R"("args": {"z": 1, "a": 2}}]})");
  EXPECT_EQ(folder.tokenizer().Decode(example.input_ids),
            R"({"role": "user", "content": "a"})"
            "\n"
            R"({"role": "assistant", "content": "b", "args": {"z": 1, "a": 2}})"
            "\n");  // Decode leaves out the EOS (<|im_end|>) appended after the last turn
}

// The model template's errors, like the data formats' (ErrorsNeverQuoteTheFile), name the file,
// line and template, never a value the data put in a message.
TEST(JsonlDatasetTest, ModelTemplateErrorsNeverQuoteTheData) {
  const std::string secret = "AKIA-SECRET-VALUE";
  const std::string user = R"({"role": "user", "content": "a"})";
  const std::string answer = R"({"role": "assistant", "content": "b"})";
  struct Case {
    const char* why;
    std::string chat_template;
    std::string messages;
  };
  const std::vector<Case> cases = {
      {"raise_exception with a message built from the data",
       "{% for m in messages %}{% if m.role not in ['user', 'assistant'] %}"
       "{{ raise_exception('Unknown role: ' + m.role) }}{% endif %}{{ m.content }}{% endfor %}",
       R"({"role": ")" + secret + R"(", "content": "a"}, )" + answer},
      {"a missing item whose key is the data",
       "{% for m in messages %}{{ messages[0][m.content].x }}{% endfor %}",
       R"({"role": "user", "content": ")" + secret + R"("}, )" + answer},
      {"turns that cannot be split: the texts around the difference hold the data",
       "{% for m in messages %}{{ m.content }}{% endfor %}"
       "{% if add_generation_prompt %}<|im_start|>{% endif %}",
       user + R"(, {"role": "assistant", "content": ")" + secret + R"("}, )" + user + ", " +
           answer},
      {"an integer beyond 64 bits", "{% for m in messages %}{{ m.content }}{% endfor %}",
       user + R"(, {"role": "assistant", "content": "b", "n": 18446744073709551615})"},
  };
  for (const Case& c : cases) {
    TempDir dir;
    WriteSmolLM2StyleTokenizer(dir.path(), {{"chat_template", c.chat_template}});
    const auto tokenizer = HfTokenizer::FromModelDir(dir.path());
    const auto chat_template = HfChatTemplate::FromModelDir(dir.path());
    WriteTextFile(dir.File("train.jsonl"), R"({"messages": [)" + c.messages + "]}\n");
    std::string error = "(no error)";
    try {
      LoadJsonlDataset(dir.File("train.jsonl"), *tokenizer,
                       DatasetOptions{256, 0, chat_template.get()});
    } catch (const TrainError& e) {
      error = e.what();
    }
    EXPECT_THAT(error, HasSubstr("train.jsonl:1: ")) << c.why;
    EXPECT_THAT(error, Not(HasSubstr(secret))) << c.why << ": " << error;
    EXPECT_THAT(error, Not(HasSubstr("18446744073709551615"))) << c.why << ": " << error;
  }
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
                                     "\n"
                                     R"({"text": "ab"})"
                                     "\n");
  const TokenizedDataset dataset = LoadJsonlDataset(dir.File("d.jsonl"), kBytes, {5, 0});
  EXPECT_EQ(dataset.lines, 3);
  EXPECT_EQ(dataset.examples.size(), 2u);
  EXPECT_EQ(dataset.truncated, 2);
  EXPECT_EQ(dataset.dropped_no_targets, 1);
  // Each example knows its line in the file, past the blank line and the dropped example.
  EXPECT_EQ(dataset.source_lines, (std::vector<int64_t>{1, 4}));
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

// A data file may be a secret someone pointed train_path at; the error travels into job.message.
TEST(JsonlDatasetTest, ErrorsNeverQuoteTheFile) {
  const std::string secret = "AKIA-SECRET-VALUE";
  for (const std::string& text :
       {"root:" + secret + ":0:0",                              // not JSON at all
        "{\"aws_key\": \"" + secret + "\", broken",             // JSON cut short
        R"({"text": {"key": ")" + secret + R"("}})",            // a field of the wrong type
        R"({"input_ids": [")" + secret + R"("]})",              // an id of the wrong type
        R"({"prompt": ")" + secret + R"(", "completion": 7})",  // completion not a string
        "[\"" + secret + "\"]"}) {                              // not an object
    const std::string error = ErrorOfFile(text);
    EXPECT_THAT(error, HasSubstr("train.jsonl:1:")) << text;
    EXPECT_THAT(error, Not(HasSubstr(secret))) << error;
  }
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
