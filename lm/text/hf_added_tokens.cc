#include "lm/text/hf_added_tokens.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "lm/text/hf_json.h"
#include "lm/text/unicode.h"
#include "lm/trainer_error.h"

namespace tuneledger::train {
namespace {

using nlohmann::json;

// The last / first code point of `text` (text is non-empty).
char32_t LastChar(std::string_view text) {
  size_t start = text.size() - 1;
  while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
  return DecodeUtf8(text, &start);
}

char32_t FirstChar(std::string_view text) {
  size_t pos = 0;
  return DecodeUtf8(text, &pos);
}

// Start of the run of whitespace that ends `text` (regex \s*$).
size_t TrailingSpaceStart(std::string_view text) {
  size_t end = text.size();
  while (end > 0) {
    size_t start = end - 1;
    while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
    size_t pos = start;
    if (!IsWhiteSpace(DecodeUtf8(text, &pos))) break;
    end = start;
  }
  return end;
}

// Length of the run of whitespace that starts `text` (regex ^\s*).
size_t LeadingSpaceLength(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t next = pos;
    if (!IsWhiteSpace(DecodeUtf8(text, &next))) break;
    pos = next;
  }
  return pos;
}

}  // namespace

HfAddedTokens::HfAddedTokens(const json& added_tokens, const HfNormalizer* normalizer,
                             const std::string& where) {
  if (added_tokens.is_null()) return;
  if (!added_tokens.is_array()) throw TrainError(where + ": must be an array");
  for (size_t i = 0; i < added_tokens.size(); ++i) {
    const json& item = added_tokens[i];
    const std::string at = where + "[" + std::to_string(i) + "]";
    HfAddedToken token;
    const json& id = RequireField(item, "id", at);
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= (1 << 30)) {
      throw TrainError(at + ".id: must be an id in [0, 2^30)");
    }
    token.id = id.get<int64_t>();
    token.content = RequireString(item, "content", at);
    token.special = OptionalBool(item, "special", false, at);
    token.single_word = OptionalBool(item, "single_word", false, at);
    token.lstrip = OptionalBool(item, "lstrip", false, at);
    token.rstrip = OptionalBool(item, "rstrip", false, at);
    token.normalized = OptionalBool(item, "normalized", !token.special, at);
    if (token.content.empty()) continue;  // the library ignores empty tokens
    token.match = token.content;
    if (token.normalized && normalizer != nullptr) normalizer->Normalize(&token.match);
    if (by_id_.count(token.id)) throw TrainError(at + ".id: " + id.dump() + " appears twice");
    id_bound_ = std::max(id_bound_, token.id + 1);
    if (token.special) special_contents_.insert(token.content);
    by_content_[token.content] = tokens_.size();
    by_id_[token.id] = tokens_.size();
    tokens_.push_back(std::move(token));
  }
  for (size_t i = 0; i < tokens_.size(); ++i) {
    const HfAddedToken& token = tokens_[i];
    if (token.match.empty()) continue;
    const int kind = token.normalized ? 1 : 0;
    by_first_byte_[kind][static_cast<unsigned char>(token.match[0])].push_back(i);
    any_[kind] = true;
  }
  for (auto& kind : by_first_byte_) {
    for (auto& bucket : kind) {
      std::stable_sort(bucket.begin(), bucket.end(), [&](size_t a, size_t b) {
        return tokens_[a].match.size() > tokens_[b].match.size();
      });
    }
  }
}

std::vector<HfAddedTokens::Segment> HfAddedTokens::Split(std::string_view text,
                                                         bool normalized) const {
  const int kind = normalized ? 1 : 0;
  std::vector<Segment> segments;
  if (!any_[kind]) {
    segments.push_back({text, -1, 0});
    return segments;
  }
  size_t start_offset = 0;  // end of the last token taken
  size_t search = 0;        // where the next leftmost-longest search begins
  while (search < text.size()) {
    // Leftmost-longest: the first position where any token matches, the longest one there.
    const HfAddedToken* found = nullptr;
    size_t start = search;
    for (; start < text.size() && found == nullptr; ++start) {
      for (size_t index : by_first_byte_[kind][static_cast<unsigned char>(text[start])]) {
        const std::string& match = tokens_[index].match;
        if (text.compare(start, match.size(), match) == 0) {
          found = &tokens_[index];
          break;
        }
      }
    }
    if (found == nullptr) break;
    --start;
    size_t stop = start + found->match.size();
    search = stop;
    if (found->single_word) {
      const bool start_space = start == 0 || !IsWordChar(LastChar(text.substr(0, start)));
      const bool stop_space = stop == text.size() || !IsWordChar(FirstChar(text.substr(stop)));
      if (!start_space || !stop_space) continue;
    }
    if (found->lstrip) start = std::max(TrailingSpaceStart(text.substr(0, start)), start_offset);
    if (found->rstrip) stop += LeadingSpaceLength(text.substr(stop));
    if (start_offset < start) {
      segments.push_back({text.substr(start_offset, start - start_offset), -1, start_offset});
    }
    segments.push_back({std::string_view(), found->id, start});
    start_offset = stop;
  }
  if (start_offset != text.size() || segments.empty()) {
    segments.push_back({text.substr(start_offset), -1, start_offset});
  }
  return segments;
}

const HfAddedToken* HfAddedTokens::FindById(int64_t id) const {
  const auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

std::optional<int64_t> HfAddedTokens::FindByContent(std::string_view content) const {
  const auto it = by_content_.find(std::string(content));
  if (it == by_content_.end()) return std::nullopt;
  return tokens_[it->second].id;
}

bool HfAddedTokens::IsSpecialContent(std::string_view content) const {
  return special_contents_.count(std::string(content)) > 0;
}

}  // namespace tuneledger::train
