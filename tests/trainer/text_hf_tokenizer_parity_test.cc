// HfTokenizer against the Hugging Face tokenizers library: tokenizer_reference.py generates a
// corpus of 12,000 lines (scripts, emoji, whitespace runs, numbers, code, special tokens in the
// middle of text), trains seven BPE tokenizers in the shapes real models ship (Llama 3, Qwen2,
// GPT-2, SmolLM2, Llama 2, Mistral, a Metaspace/Lowercase one) and writes the library's ids and
// decodes. Every line must encode to the same ids, with and without special tokens, and decode
// to the same text.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "lm/text/hf_tokenizer.h"
#include "tests/trainer/python_reference_dir.h"

namespace tuneledger::train {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string Join(const std::vector<int64_t>& ids) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < ids.size(); ++i) out << (i ? ", " : "") << ids[i];
  out << "]";
  return out.str();
}

size_t FirstDifference(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  return i;
}

std::vector<int64_t> Ids(const json& value) { return value.get<std::vector<int64_t>>(); }

// tokenizer_reference.py for one tokenizer (ctest runs each test in its own process, so each
// makes only what it compares); $TUNELEDGER_TOKENIZER_REFERENCE_DIR reuses a filled folder.
PythonReferenceDir TokenizerReference(const std::string& name) {
  return PythonReferenceDir("tokenizer_reference.py", "--only " + name,
                            "TUNELEDGER_TOKENIZER_REFERENCE_DIR", "tokenizer_parity");
}

std::vector<std::string> Corpus(const std::string& dir) {
  std::vector<std::string> lines;
  std::ifstream in(dir + "/corpus.jsonl");
  std::string line;
  while (std::getline(in, line)) lines.push_back(json::parse(line).get<std::string>());
  return lines;
}

// Compares every corpus line; prints the first few mismatches in full.
void ExpectParity(const std::string& name) {
  const PythonReferenceDir reference = TokenizerReference(name);
  ASSERT_FALSE(reference.path().empty()) << "cannot make a temp folder";
  ASSERT_EQ(reference.error(), "");
  const std::string folder = reference.path() + "/" + name;
  const auto tokenizer = HfTokenizer::FromModelDir(folder);
  const std::vector<std::string> corpus = Corpus(reference.path());
  ASSERT_GE(corpus.size(), 10000u);
  std::ifstream expected_file(folder + "/expected.jsonl");
  std::string expected_line;
  int mismatches = 0;
  size_t compared = 0;
  for (const std::string& text : corpus) {
    ASSERT_TRUE(std::getline(expected_file, expected_line)) << name << ": expected.jsonl short";
    const json expected = json::parse(expected_line);
    const std::vector<int64_t> want = Ids(expected["ids"]);
    const std::vector<int64_t> want_special = Ids(expected["with_special"]);
    const std::vector<int64_t> got = tokenizer->Encode(text);
    std::vector<int64_t> got_special;
    if (tokenizer->add_bos()) got_special.push_back(tokenizer->bos_id());
    got_special.insert(got_special.end(), got.begin(), got.end());
    if (tokenizer->add_eos()) got_special.push_back(tokenizer->eos_id());
    const std::string decoded = tokenizer->Decode(want);
    const std::string want_decoded = expected["decoded"].get<std::string>();
    ++compared;
    if (got == want && got_special == want_special && decoded == want_decoded) continue;
    if (++mismatches > 5) continue;
    ADD_FAILURE() << name << ": line " << compared << ": " << json(text).dump() << "\n"
                  << "  library ids: " << Join(want) << "\n"
                  << "  ours:        " << Join(got) << "\n"
                  << "  first difference at position " << FirstDifference(want, got) << "\n"
                  << "  library with specials: " << Join(want_special) << "\n"
                  << "  ours with specials:    " << Join(got_special) << "\n"
                  << "  library decode: " << json(want_decoded).dump() << "\n"
                  << "  our decode:     " << json(decoded).dump();
  }
  EXPECT_EQ(mismatches, 0) << name << ": " << mismatches << " of " << compared << " lines differ";
  EXPECT_EQ(compared, corpus.size());
}

TEST(HfTokenizerParityTest, Llama3SplitRegexByteLevel) { ExpectParity("llama3"); }
TEST(HfTokenizerParityTest, Qwen2NfcSplitRegexByteLevel) { ExpectParity("qwen2"); }
TEST(HfTokenizerParityTest, Gpt2ByteLevelWithAddedTokens) { ExpectParity("gpt2"); }
TEST(HfTokenizerParityTest, SmolLm2DigitsByteLevel) { ExpectParity("smollm2"); }
TEST(HfTokenizerParityTest, Llama2PrependReplaceByteFallback) { ExpectParity("llama2"); }
TEST(HfTokenizerParityTest, MistralMetaspaceByteFallback) { ExpectParity("mistral"); }
TEST(HfTokenizerParityTest, MetaspaceSplitLowercase) { ExpectParity("metaspace"); }

}  // namespace
}  // namespace tuneledger::train
