// The "added_tokens" of a Hugging Face tokenizer.json (special tokens such as
// <|begin_of_text|>, and plain added tokens) and the tokenizers library's way of finding them in
// text before anything else runs: leftmost-longest matches, then each token's single_word
// (drop a match inside a word), lstrip/rstrip (swallow the whitespace to its left/right) flags.
// Tokens with normalized=false are matched in the raw input; those with normalized=true in
// each piece after the normalizer, spelled as the normalizer rewrites them.
//
// Thread safety: immutable after construction.
#ifndef TUNELEDGER_LM_TEXT_HF_ADDED_TOKENS_H_
#define TUNELEDGER_LM_TEXT_HF_ADDED_TOKENS_H_

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "lm/text/hf_normalizer.h"

namespace tuneledger::train {

struct HfAddedToken {
  int64_t id = 0;
  std::string content;
  std::string match;  // what is searched for: content, or its normalized form
  bool special = false;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
};

class HfAddedTokens {
 public:
  // `added_tokens` is the JSON array (or null); `normalizer` may be null.
  HfAddedTokens(const nlohmann::json& added_tokens, const HfNormalizer* normalizer,
                const std::string& where);

  struct Segment {
    std::string_view text;  // empty when id >= 0
    int64_t id;             // the added token's id, or -1 for plain text
    size_t begin;           // byte offset in the searched text
  };
  // Cuts `text` into added tokens (those with normalized == `normalized`) and the text around
  // them. Plain-text segments may be empty.
  std::vector<Segment> Split(std::string_view text, bool normalized) const;

  const HfAddedToken* FindById(int64_t id) const;
  std::optional<int64_t> FindByContent(std::string_view content) const;
  bool IsSpecialContent(std::string_view content) const;
  int64_t id_bound() const { return id_bound_; }

 private:
  std::vector<HfAddedToken> tokens_;
  std::unordered_map<int64_t, size_t> by_id_;
  std::unordered_map<std::string, size_t> by_content_;
  std::unordered_set<std::string> special_contents_;
  // Per first byte of `match`, the token indices longest first; [0] raw, [1] normalized.
  std::vector<size_t> by_first_byte_[2][256];
  bool any_[2] = {false, false};
  int64_t id_bound_ = 0;
};

}  // namespace tuneledger::train

#endif  // TUNELEDGER_LM_TEXT_HF_ADDED_TOKENS_H_
