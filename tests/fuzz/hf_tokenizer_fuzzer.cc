// Fuzz target: the tokenizer.json reader (lm/text/hf_tokenizer.h). The input is a
// tokenizer.json, optionally followed by a NUL byte and a tokenizer_config.json (JSON text holds
// no raw NUL, so the split is unambiguous). Only a TrainError may come out of reading it; a
// tokenizer it accepts then encodes fixed texts (ASCII, accents, CJK, emoji, invalid UTF-8,
// special-token look-alikes) and the input's own bytes: every id must be inside
// [0, vocab_size) and decoding any ids, out-of-range ones included, must not fail.
// Seeds: tests/fuzz/hf_tokenizer/ (tests/fuzz/make_seeds.py).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "lm/text/hf_tokenizer.h"
#include "lm/trainer_error.h"
#include "tests/fuzz/fuzz_check.h"
#include "tests/fuzz/fuzz_scratch_file.h"

namespace tuneledger::train {
namespace {

// Longest prefix of the input that is also encoded as text.
constexpr size_t kMaxSelfText = 512;

const char* const kTexts[] = {
    "Hello world",
    "  leading spaces, tabs\tand\nnew lines\r\n",
    "caf\xc3\xa9 na\xc3\xafve e\xcc\x81 \xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd",
    "digits 1234567890 and code: x[i] += 1;",
    "<s> </s> <unk> <|end|> <|endoftext|> <0x41>",
    "invalid \xff\xfe utf-8 \xc3 truncated \xe2\x82",
    "",
};

void EncodeAndCheck(const HfTokenizer& tokenizer, const std::string& text) {
  const std::vector<int64_t> ids = tokenizer.Encode(text);
  for (int64_t id : ids) FUZZ_CHECK(id >= 0 && id < tokenizer.vocab_size());
  tokenizer.Decode(ids);
}

void Exercise(const HfTokenizer& tokenizer, const uint8_t* data, size_t size) {
  FUZZ_CHECK(tokenizer.vocab_size() >= 0);
  for (int64_t id : {tokenizer.bos_id(), tokenizer.eos_id(), tokenizer.pad_id()}) {
    FUZZ_CHECK(id >= -1 && id < tokenizer.vocab_size());
  }
  for (const char* text : kTexts) EncodeAndCheck(tokenizer, text);
  EncodeAndCheck(tokenizer, std::string(reinterpret_cast<const char*>(data),
                                        size < kMaxSelfText ? size : kMaxSelfText));
  const int64_t vocab = tokenizer.vocab_size();
  tokenizer.Decode({-1, 0, vocab - 1, vocab, std::numeric_limits<int64_t>::max(),
                    std::numeric_limits<int64_t>::min()});
}

}  // namespace
}  // namespace tuneledger::train

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tuneledger::train;
  static const tuneledger::fuzz::FuzzScratchFile tokenizer_file(HfTokenizer::kFileName);
  static const tuneledger::fuzz::FuzzScratchFile config_file(HfTokenizer::kConfigFileName);
  const auto* nul = static_cast<const uint8_t*>(std::memchr(data, 0, size));
  const size_t tokenizer_size = nul != nullptr ? static_cast<size_t>(nul - data) : size;
  tokenizer_file.Write(data, tokenizer_size);
  std::string config_path;
  if (nul != nullptr) {
    config_path = config_file.Write(nul + 1, size - tokenizer_size - 1);
  }
  std::unique_ptr<HfTokenizer> tokenizer;
  try {
    tokenizer = HfTokenizer::FromFiles(tokenizer_file.path(), config_path);
  } catch (const TrainError&) {
    return 0;  // refused with a message
  }
  Exercise(*tokenizer, data, tokenizer_size);
  return 0;
}
