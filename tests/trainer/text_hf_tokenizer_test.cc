// HfTokenizer on small hand-written tokenizer.json files: the parts the parity test's trained
// tokenizers do not reach (continuing_subword_prefix, end_of_word_suffix, unk fusing), the
// special-token rules of tokenizer_config.json, and every refusal naming its JSON path. Also the
// split-pattern matcher and NFC on their own.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lm/text/hf_tokenizer.h"
#include "lm/text/unicode.h"
#include "lm/text/unicode_regex.h"
#include "lm/trainer_error.h"

namespace tuneledger::train {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class TokenizerDir {
 public:
  TokenizerDir() {
    char pattern[] = "/tmp/tuneledger_hf_tokenizer_XXXXXX";
    path_ = ::mkdtemp(pattern);
  }
  ~TokenizerDir() { fs::remove_all(path_); }
  std::string Write(const std::string& name, const json& content) const {
    const std::string file = path_ + "/" + name;
    std::ofstream(file) << content.dump();
    return file;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A byte-level-free BPE over "a", "b", "c" with merges a b -> ab, ab c -> abc.
json SmallTokenizer() {
  return json::parse(R"({
    "normalizer": null,
    "pre_tokenizer": {"type": "WhitespaceSplit"},
    "model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": false,
              "vocab": {"<unk>": 0, "<s>": 1, "</s>": 2, "a": 3, "b": 4, "c": 5, "ab": 6,
                        "abc": 7},
              "merges": ["a b", ["ab", "c"]]},
    "decoder": null,
    "added_tokens": [{"id": 1, "content": "<s>", "special": true},
                     {"id": 2, "content": "</s>", "special": true}],
    "post_processor": {"type": "TemplateProcessing",
                       "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                  {"Sequence": {"id": "A", "type_id": 0}}],
                       "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}}
  })");
}

std::unique_ptr<HfTokenizer> Load(const json& tokenizer, const json* config = nullptr) {
  TokenizerDir dir;
  dir.Write("tokenizer.json", tokenizer);
  if (config != nullptr) dir.Write("tokenizer_config.json", *config);
  return HfTokenizer::FromModelDir(dir.path());
}

std::string LoadError(const json& tokenizer, const json* config = nullptr) {
  try {
    Load(tokenizer, config);
  } catch (const TrainError& e) {
    return e.what();
  }
  return "no error";
}

TEST(HfTokenizerTest, MergesInBothSpellingsAndUnknownCharacters) {
  const auto tokenizer = Load(SmallTokenizer());
  EXPECT_THAT(tokenizer->Encode("abc ab cab"), ElementsAre(7, 6, 5, 6));
  // Unfused unknowns: one <unk> per unknown character; special tokens are cut out first.
  EXPECT_THAT(tokenizer->Encode("xya<s>b"), ElementsAre(0, 0, 3, 1, 4));
  EXPECT_EQ(tokenizer->Decode({1, 7, 6, 2, 99}), "abc ab");  // no decoder: joined by spaces
  EXPECT_EQ(tokenizer->vocab_size(), 8);
  EXPECT_EQ(tokenizer->bos_id(), 1);
  EXPECT_TRUE(tokenizer->add_bos());
  EXPECT_FALSE(tokenizer->add_eos());
  EXPECT_EQ(tokenizer->eos_id(), -1);
  EXPECT_EQ(tokenizer->pad_id(), 0);  // no pad, no eos

  json fused = SmallTokenizer();
  fused["model"]["fuse_unk"] = true;
  EXPECT_THAT(Load(fused)->Encode("xya"), ElementsAre(0, 3));
}

TEST(HfTokenizerTest, ContinuingSubwordPrefixAndEndOfWordSuffix) {
  json prefixed = SmallTokenizer();
  prefixed["model"]["continuing_subword_prefix"] = "##";
  prefixed["model"]["vocab"] = {{"<unk>", 0}, {"a", 1},   {"##b", 2}, {"##c", 3},
                                {"ab", 4},    {"abc", 5}, {"b", 6}};
  prefixed["model"]["merges"] = {"a ##b", "ab ##c"};
  prefixed["added_tokens"] = json::array();
  prefixed["post_processor"] = nullptr;
  EXPECT_THAT(Load(prefixed)->Encode("abc ba"), ElementsAre(5, 6, 0));

  json suffixed = prefixed;
  suffixed["model"].erase("continuing_subword_prefix");
  suffixed["model"]["end_of_word_suffix"] = "</w>";
  suffixed["model"]["vocab"] = {{"<unk>", 0}, {"a", 1},       {"b", 2},    {"c</w>", 3},
                                {"ab", 4},    {"abc</w>", 5}, {"b</w>", 6}};
  suffixed["model"]["merges"] = {"a b", "ab c</w>"};
  suffixed["decoder"] = {{"type", "BPEDecoder"}, {"suffix", "</w>"}};
  const auto tokenizer = Load(suffixed);
  EXPECT_THAT(tokenizer->Encode("abc ab"), ElementsAre(5, 1, 6));
  EXPECT_EQ(tokenizer->Decode({5, 1, 6}), "abc ab");
}

TEST(HfTokenizerTest, TokenizerConfigNamesTheSpecialTokens) {
  json config = {
      {"bos_token", {{"content", "<s>"}}}, {"eos_token", "</s>"}, {"add_eos_token", true}};
  auto tokenizer = Load(SmallTokenizer(), &config);
  EXPECT_EQ(tokenizer->bos_id(), 1);
  EXPECT_EQ(tokenizer->eos_id(), 2);
  EXPECT_EQ(tokenizer->pad_id(), 2);  // pad falls back to eos
  EXPECT_TRUE(tokenizer->add_bos());  // from the template
  EXPECT_TRUE(tokenizer->add_eos());  // from the config

  config = {{"bos_token", "<s>"}, {"add_bos_token", false}, {"pad_token", "<unk>"}};
  tokenizer = Load(SmallTokenizer(), &config);
  EXPECT_FALSE(tokenizer->add_bos());  // the config overrides the template
  EXPECT_EQ(tokenizer->pad_id(), 0);

  config = {{"bos_token", "<missing>"}};
  EXPECT_THAT(LoadError(SmallTokenizer(), &config),
              AllOf(HasSubstr("tokenizer_config.json: bos_token"), HasSubstr("<missing>")));
  config = {{"bos_token", "</s>"}};
  EXPECT_THAT(LoadError(SmallTokenizer(), &config), HasSubstr("post_processor template"));
  config = {{"add_eos_token", true}};
  EXPECT_THAT(LoadError(SmallTokenizer(), &config), HasSubstr("no eos_token"));
}

TEST(HfTokenizerTest, UnsupportedPiecesAreErrorsNamingTheJsonPath) {
  struct Case {
    const char* pointer;  // JSON pointer to replace
    json value;
    const char* expected;
  };
  const Case cases[] = {
      {"/model/type", "WordPiece", "tokenizer.json: model.type: \"WordPiece\""},
      {"/model/type", "Unigram", "model.type: \"Unigram\""},
      {"/model/dropout", 0.1, "model.dropout"},
      {"/model/merges/0", "a x", "model.merges[0]: \"x\" is not in the vocab"},
      {"/model/merges/1", "ab", "model.merges[1]"},
      {"/model/unk_token", "<nope>", "model.unk_token"},
      {"/pre_tokenizer",
       {{"type", "Sequence"}, {"pretokenizers", {{{"type", "Digits"}}, {{"type", "Whitespace"}}}}},
       "pre_tokenizer.pretokenizers[1].type: pre-tokenizer \"Whitespace\""},
      {"/pre_tokenizer",
       {{"type", "Split"}, {"pattern", {{"Regex", "\\bx"}}}, {"behavior", "Isolated"}},
       "pre_tokenizer.pattern.Regex: regex at character 1: unsupported escape \\b"},
      {"/pre_tokenizer",
       {{"type", "Split"}, {"pattern", {{"Regex", "a"}}}, {"behavior", "X"}},
       "pre_tokenizer.behavior"},
      {"/normalizer", {{"type", "NFKC"}}, "normalizer.type: normalizer \"NFKC\""},
      {"/decoder", {{"type", "WordPiece"}}, "decoder.type: decoder \"WordPiece\""},
      {"/post_processor", {{"type", "BertProcessing"}}, "post_processor.type"},
      {"/added_tokens/0/id", "one", "added_tokens[0].id"},
  };
  for (const Case& c : cases) {
    json tokenizer = SmallTokenizer();
    tokenizer[json::json_pointer(c.pointer)] = c.value;
    EXPECT_THAT(LoadError(tokenizer), HasSubstr(c.expected)) << c.pointer;
  }
  TokenizerDir dir;
  EXPECT_THROW(HfTokenizer::FromModelDir(dir.path()), TrainError);  // no tokenizer.json
}

TEST(HfTokenizerTest, AddedTokenFlags) {
  json tokenizer = SmallTokenizer();
  tokenizer["pre_tokenizer"] = nullptr;
  tokenizer["model"]["vocab"][" "] = 8;
  tokenizer["added_tokens"].push_back(
      {{"id", 9}, {"content", "<t>"}, {"lstrip", true}, {"rstrip", true}});
  tokenizer["added_tokens"].push_back({{"id", 10}, {"content", "ab"}, {"single_word", true}});
  const auto hf = Load(tokenizer);
  EXPECT_THAT(hf->Encode("a  <t>  b"), ElementsAre(3, 9, 4));  // both sides' spaces swallowed
  EXPECT_THAT(hf->Encode("ab abc"), ElementsAre(10, 8, 7));    // "ab" inside "abc" is no word
  EXPECT_EQ(hf->Decode({9, 10}), "<t> ab");                    // plain added tokens decode
}

std::vector<std::string> Pieces(const std::string& pattern, const std::string& text) {
  const UnicodeRegex regex = UnicodeRegex::Compile(pattern, "test");
  const RegexInput input(text);
  std::vector<std::string> pieces;
  for (const auto& [begin, end] : regex.FindAll(input)) {
    pieces.push_back(
        text.substr(input.byte_offset(begin), input.byte_offset(end) - input.byte_offset(begin)));
  }
  return pieces;
}

TEST(UnicodeRegexTest, Llama3PatternConstructs) {
  const std::string llama3 =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  // Case folding includes U+017F (long s), as Oniguruma's.
  EXPECT_THAT(Pieces(llama3, "x'\u017Fx I'LL"), ElementsAre("x", "'\u017F", "x", " I", "'LL"));
  EXPECT_THAT(Pieces(llama3, "1234567 \u00e9t\u00e9  \n\n x"),
              ElementsAre("123", "456", "7", " \u00e9t\u00e9", "  \n\n", " x"));
  EXPECT_THAT(Pieces(R"(a{2,3}?|b++b|c(?=d))", "aaaa bbb cd"), ElementsAre("aa", "aa", "c"));
}

TEST(UnicodeRegexTest, UnsupportedConstructsAreRefused) {
  for (const char* pattern :
       {R"(\p{Han})", R"(\bx)", "(?<=a)b", "[[a]]", "a{2}+", "(a", "a)", "(a*)*"}) {
    EXPECT_THROW(UnicodeRegex::Compile(pattern, "p"), TrainError) << pattern;
  }
}

TEST(UnicodeTest, NfcComposesReordersAndKeepsExclusions) {
  EXPECT_EQ(ToNfc("e\u0301"), "\u00e9");
  EXPECT_EQ(ToNfc("\u1100\u1161\u11a8"), "\uac01");             // Hangul LV + T
  EXPECT_EQ(ToNfc("a\u0302\u0323"), "\u1ead");                  // reordered, then composed
  EXPECT_EQ(ToNfc("\u0958"), "\u0915\u093c");                   // composition exclusion
  EXPECT_EQ(ToNfc("\u212b"), "\u00c5");                         // singleton
  EXPECT_EQ(ToLowercase("ÀB\u0130\u03a3"), "àbi\u0307\u03c3");  // per character
  EXPECT_EQ(Utf8Lossy("a\xF0\x9F\x98z\xFF"), "a\uFFFDz\uFFFD");
}

}  // namespace
}  // namespace tuneledger::train
