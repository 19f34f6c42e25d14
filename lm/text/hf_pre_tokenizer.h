// The "pre_tokenizer" of a Hugging Face tokenizer.json: ByteLevel (add_prefix_space, use_regex
// with GPT-2's regex; trim_offsets only moves offsets, which ids do not carry), Split (String or
// Regex pattern, every delimiter behavior, invert), Digits, Metaspace (replacement,
// prepend_scheme first/always/never or the legacy add_prefix_space, split), WhitespaceSplit and
// Sequence, as the tokenizers library applies them to each piece of text between added tokens.
// Other types are a TrainError naming the JSON path.
//
// Thread safety: immutable after parsing.
#ifndef TUNELEDGER_LM_TEXT_HF_PRE_TOKENIZER_H_
#define TUNELEDGER_LM_TEXT_HF_PRE_TOKENIZER_H_

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace tuneledger::train {

struct PreToken {
  std::string text;
  // Whether the piece begins at offset 0 of the original input (Metaspace's "first" scheme
  // prepends only there).
  bool at_start;
};

class HfPreTokenizer {
 public:
  virtual ~HfPreTokenizer() = default;
  // Splits and rewrites `pieces` in place; empty pieces are dropped.
  virtual void PreTokenize(std::vector<PreToken>* pieces) const = 0;
};

// nullptr for a JSON null. `where` is the JSON path, e.g. "<file>: pre_tokenizer".
std::unique_ptr<HfPreTokenizer> ParseHfPreTokenizer(const nlohmann::json& pre_tokenizer,
                                                    const std::string& where);

enum class MetaspacePrependScheme { kAlways, kFirst, kNever };
// Metaspace's fields, shared by the pre-tokenizer and the decoder: prepend_scheme (or the legacy
// add_prefix_space: true = always, false = never) and the one-character replacement.
MetaspacePrependScheme ParseMetaspaceScheme(const nlohmann::json& object, const std::string& where);
char32_t ParseMetaspaceReplacement(const nlohmann::json& object, const std::string& where);

// GPT-2's byte -> printable character table (ByteLevel), and its inverse (-1: not a byte char).
const std::string& ByteLevelChar(unsigned char byte);
int ByteLevelByte(char32_t cp);

}  // namespace tuneledger::train

#endif  // TUNELEDGER_LM_TEXT_HF_PRE_TOKENIZER_H_
