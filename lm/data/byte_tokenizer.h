// Byte-level tokenizer: each UTF-8 byte is one token, plus three special tokens.
//   id 0 = PAD, 1 = BOS, 2 = EOS, id 3 + b = byte b (0..255)  -> vocab_size 259
// The model folder announces it with byte_tokenizer.json:
//   {"type": "byte", "pad_id": 0, "bos_id": 1, "eos_id": 2, "byte_offset": 3}
// (the fields are checked against the fixed layout above so a folder cannot silently disagree).
//
// Thread safety: immutable; safe to share.
#ifndef TUNELEDGER_LM_DATA_BYTE_TOKENIZER_H_
#define TUNELEDGER_LM_DATA_BYTE_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lm/text/tokenizer.h"

namespace tuneledger::train {

class ByteTokenizer : public Tokenizer {
 public:
  static constexpr int64_t kPadId = 0;
  static constexpr int64_t kBosId = 1;
  static constexpr int64_t kEosId = 2;
  static constexpr int64_t kByteOffset = 3;
  static constexpr int64_t kVocabSize = kByteOffset + 256;
  static constexpr const char* kConfigFileName = "byte_tokenizer.json";

  // Reads and checks <model_dir>/byte_tokenizer.json.
  static std::unique_ptr<ByteTokenizer> FromModelDir(const std::string& model_dir);
  // The JSON that FromModelDir accepts (written by the bundled model's build).
  static std::string ConfigJson();

  std::vector<int64_t> Encode(const std::string& text) const override;
  std::string Decode(const std::vector<int64_t>& ids) const override;
  int64_t vocab_size() const override { return kVocabSize; }
  int64_t bos_id() const override { return kBosId; }
  int64_t eos_id() const override { return kEosId; }
  int64_t pad_id() const override { return kPadId; }
};

}  // namespace tuneledger::train

#endif  // TUNELEDGER_LM_DATA_BYTE_TOKENIZER_H_
