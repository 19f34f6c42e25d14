// The "normalizer" of a Hugging Face tokenizer.json: NFC, Lowercase, Prepend, Replace, Strip
// and Sequence, as the tokenizers library applies them (to each piece of text between added
// tokens). Other types (NFD, NFKC, NFKD, BertNormalizer, Precompiled, ...) are a TrainError
// naming the JSON path.
//
// Thread safety: immutable after parsing.
#ifndef TUNELEDGER_LM_TEXT_HF_NORMALIZER_H_
#define TUNELEDGER_LM_TEXT_HF_NORMALIZER_H_

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>

namespace tuneledger::train {

class HfNormalizer {
 public:
  virtual ~HfNormalizer() = default;
  virtual void Normalize(std::string* text) const = 0;
};

// nullptr for a JSON null (no normalizer). `where` is the JSON path, e.g. "<file>: normalizer".
std::unique_ptr<HfNormalizer> ParseHfNormalizer(const nlohmann::json& normalizer,
                                                const std::string& where);

}  // namespace tuneledger::train

#endif  // TUNELEDGER_LM_TEXT_HF_NORMALIZER_H_
