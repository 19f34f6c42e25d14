// Tokenizers: the order LoadTokenizer picks them in; byte-level round trip and layout;
// SentencePiece trained here with libsentencepiece's trainer (in a torch-free helper process),
// then loaded through the model folder like a real model's, in a process that also loads
// LibTorch (the protobuf clash the shim avoids).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "lm/data/byte_tokenizer.h"
#include "lm/text/hf_tokenizer.h"
#include "lm/trainer_error.h"
#include "tests/testing/temp_dir.h"
#include "tests/trainer/recipe_test_util.h"
#include "worker/trainer/recipe/sentencepiece_tokenizer.h"
#include "worker/trainer/recipe/tokenizer.h"

namespace tuneledger::train {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::WriteTextFile;
using ::tuneledger::testing::TempDir;

TEST(ByteTokenizerTest, RoundTripsAnyBytes) {
  ByteTokenizer tokenizer;
  std::string text = "Hello, w\xC3\xB6rld! \n\t";
  for (int b = 0; b < 256; ++b) text += static_cast<char>(b);
  const std::vector<int64_t> ids = tokenizer.Encode(text);
  ASSERT_EQ(ids.size(), text.size());
  for (int64_t id : ids) {
    EXPECT_GE(id, ByteTokenizer::kByteOffset);
    EXPECT_LT(id, ByteTokenizer::kVocabSize);
  }
  EXPECT_EQ(tokenizer.Decode(ids), text);
}

TEST(ByteTokenizerTest, LayoutAndSpecialTokens) {
  ByteTokenizer tokenizer;
  EXPECT_THAT(tokenizer.Encode("Ab"), ElementsAre(3 + 'A', 3 + 'b'));
  EXPECT_EQ(tokenizer.vocab_size(), 259);
  EXPECT_EQ(tokenizer.pad_id(), 0);
  EXPECT_EQ(tokenizer.bos_id(), 1);
  EXPECT_EQ(tokenizer.eos_id(), 2);
  // Special tokens decode to nothing.
  EXPECT_EQ(tokenizer.Decode({1, 3 + 'x', 2, 0}), "x");
}

TEST(ByteTokenizerTest, LoadedFromModelFolderAndChecked) {
  TempDir dir;
  WriteTextFile(dir.File("byte_tokenizer.json"), ByteTokenizer::ConfigJson());
  auto tokenizer = LoadTokenizer(dir.path());
  EXPECT_EQ(tokenizer->vocab_size(), ByteTokenizer::kVocabSize);

  WriteTextFile(dir.File("byte_tokenizer.json"), R"({"type": "byte", "bos_id": 5})");
  try {
    LoadTokenizer(dir.path());
    FAIL() << "a byte_tokenizer.json that disagrees with the layout must be rejected";
  } catch (const TrainError& e) {
    EXPECT_THAT(e.what(), HasSubstr("bos_id"));
  }
}

TEST(TokenizerTest, FolderWithoutTokenizerIsAnError) {
  TempDir dir;
  try {
    LoadTokenizer(dir.path());
    FAIL() << "expected TrainError";
  } catch (const TrainError& e) {
    EXPECT_THAT(e.what(), HasSubstr("tokenizer.json"));
    EXPECT_THAT(e.what(), HasSubstr("tokenizer.model"));
    EXPECT_THAT(e.what(), HasSubstr("byte_tokenizer.json"));
  }
}

// A folder with tokenizer.json (and tokenizer_config.json) gets HfTokenizer, before a
// tokenizer.model or byte_tokenizer.json beside it.
TEST(TokenizerTest, TokenizerJsonComesFirst) {
  TempDir dir;
  WriteTextFile(dir.File("tokenizer.json"), R"({
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false},
    "model": {"type": "BPE", "vocab": {"<s>": 0, "</s>": 1, "h": 2, "i": 3, "hi": 4},
              "merges": ["h i"]},
    "decoder": {"type": "ByteLevel"},
    "added_tokens": [{"id": 0, "content": "<s>", "special": true},
                     {"id": 1, "content": "</s>", "special": true}]})");
  WriteTextFile(dir.File("tokenizer_config.json"),
                R"({"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": true})");
  WriteTextFile(dir.File("tokenizer.model"), "not a protobuf");
  WriteTextFile(dir.File("byte_tokenizer.json"), ByteTokenizer::ConfigJson());
  auto tokenizer = LoadTokenizer(dir.path());
  ASSERT_NE(dynamic_cast<HfTokenizer*>(tokenizer.get()), nullptr);
  EXPECT_THAT(tokenizer->Encode("hi"), ElementsAre(4));
  EXPECT_EQ(tokenizer->Decode({0, 4, 1}), "hi");
  EXPECT_EQ(tokenizer->bos_id(), 0);
  EXPECT_EQ(tokenizer->eos_id(), 1);
  EXPECT_EQ(tokenizer->pad_id(), 1);
  EXPECT_TRUE(tokenizer->add_bos());
}

// Trains a small BPE model on generated sentences into <dir>/tokenizer.model.
void TrainSentencePiece(const TempDir& dir) {
  std::string corpus;
  const char* words[] = {"the", "cat",  "sat", "on",  "a",    "mat", "dog",  "ran",
                         "to",  "park", "big", "red", "ball", "and", "then", "slept"};
  for (int i = 0; i < 400; ++i) {
    for (int j = 0; j < 8; ++j) corpus += std::string(words[(i * 7 + j * 3) % 16]) + " ";
    corpus += "\n";
  }
  WriteTextFile(dir.File("corpus.txt"), corpus);
  // libsentencepiece's trainer, in its own torch-free process (sentencepiece_shim.h).
  const testing::TrainerRun run = testing::RunProcess(
      std::string(TUNELEDGER_BIN_DIR) + "/trainer_recipe_spm_train",
      {"--input=" + dir.File("corpus.txt"), "--model_prefix=" + dir.File("tokenizer"),
       "--vocab_size=60", "--model_type=bpe", "--character_coverage=1.0", "--bos_id=1",
       "--eos_id=2", "--unk_id=0", "--pad_id=3", "--minloglevel=2"});
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
}

TEST(SentencePieceTokenizerTest, EncodesAndDecodesThroughTheModelFolder) {
  TempDir dir;
  TrainSentencePiece(dir);
  // LoadTokenizer prefers tokenizer.model even when a byte tokenizer config is present.
  WriteTextFile(dir.File("byte_tokenizer.json"), ByteTokenizer::ConfigJson());
  auto tokenizer = LoadTokenizer(dir.path());
  ASSERT_NE(dynamic_cast<SentencePieceTokenizer*>(tokenizer.get()), nullptr);
  EXPECT_EQ(tokenizer->vocab_size(), 60);
  EXPECT_EQ(tokenizer->bos_id(), 1);
  EXPECT_EQ(tokenizer->eos_id(), 2);
  EXPECT_EQ(tokenizer->pad_id(), 3);

  const std::string text = "the big dog ran to the park";
  const std::vector<int64_t> ids = tokenizer->Encode(text);
  EXPECT_FALSE(ids.empty());
  EXPECT_LT(ids.size(), text.size()) << "BPE merges should make fewer tokens than characters";
  for (int64_t id : ids) {
    EXPECT_GE(id, 0);
    EXPECT_LT(id, 60);
  }
  EXPECT_EQ(tokenizer->Decode(ids), text);
  // BOS/EOS and out-of-range ids are dropped when decoding.
  std::vector<int64_t> with_specials = {1};
  with_specials.insert(with_specials.end(), ids.begin(), ids.end());
  with_specials.push_back(2);
  with_specials.push_back(9999);
  EXPECT_EQ(tokenizer->Decode(with_specials), text);
}

TEST(SentencePieceTokenizerTest, CorruptModelIsAnErrorNamingTheFile) {
  TempDir dir;
  WriteTextFile(dir.File("tokenizer.model"), "not a protobuf");
  try {
    LoadTokenizer(dir.path());
    FAIL() << "expected TrainError";
  } catch (const TrainError& e) {
    EXPECT_THAT(e.what(), HasSubstr("tokenizer.model"));
  }
}

}  // namespace
}  // namespace tuneledger::train
