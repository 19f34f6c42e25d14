// The pattern of a tokenizer.json Split pre-tokenizer or Replace normalizer/decoder:
// {"String": "literal"} or {"Regex": "oniguruma pattern"} (unicode_regex.h says which regex
// constructs are supported), and the tokenizers library's find_matches over it: the text cut
// into consecutive pieces, each flagged as a match or not.
//
// Thread safety: immutable after construction.
#ifndef TUNELEDGER_LM_TEXT_HF_PATTERN_H_
#define TUNELEDGER_LM_TEXT_HF_PATTERN_H_

#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lm/text/unicode_regex.h"

namespace tuneledger::train {

struct PatternPiece {
  size_t begin;  // byte offsets into the text
  size_t end;
  bool is_match;
};

class HfPattern {
 public:
  // `pattern` is the {"String"|"Regex": ...} object; errors name `where`.
  HfPattern(const nlohmann::json& pattern, const std::string& where);
  static HfPattern Regex(std::string_view regex, const std::string& where);

  // Consecutive pieces covering `text`; an empty text gives one empty non-match.
  std::vector<PatternPiece> FindMatches(std::string_view text) const;

 private:
  HfPattern() = default;
  std::string literal_;
  std::optional<UnicodeRegex> regex_;
};

}  // namespace tuneledger::train

#endif  // TUNELEDGER_LM_TEXT_HF_PATTERN_H_
