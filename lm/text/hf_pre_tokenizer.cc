#include "lm/text/hf_pre_tokenizer.h"

#include <array>
#include <functional>
#include <nlohmann/json.hpp>

#include "lm/text/hf_json.h"
#include "lm/text/hf_pattern.h"
#include "lm/text/unicode.h"
#include "lm/trainer_error.h"

namespace tuneledger::train {
namespace {

using nlohmann::json;

constexpr const char* kGpt2Regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

Behavior ParseBehavior(const json& object, const std::string& where) {
  const std::string name = RequireString(object, "behavior", where);
  if (name == "Removed") return Behavior::kRemoved;
  if (name == "Isolated") return Behavior::kIsolated;
  if (name == "MergedWithPrevious") return Behavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return Behavior::kMergedWithNext;
  if (name == "Contiguous") return Behavior::kContiguous;
  throw TrainError(where + ".behavior: \"" + name + "\" is not a split behavior");
}

// NormalizedString::split: turns find_matches' pieces into the splits to keep.
std::vector<PatternPiece> ApplyBehavior(std::vector<PatternPiece> matches, Behavior behavior) {
  std::vector<PatternPiece> splits;
  switch (behavior) {
    case Behavior::kIsolated:
      return matches;
    case Behavior::kRemoved:
      for (const PatternPiece& piece : matches) {
        if (!piece.is_match) splits.push_back(piece);
      }
      return splits;
    case Behavior::kContiguous: {
      bool previous_match = false;
      for (const PatternPiece& piece : matches) {
        if (piece.is_match == previous_match && !splits.empty()) {
          splits.back().end = piece.end;
        } else {
          splits.push_back(piece);
        }
        previous_match = piece.is_match;
      }
      return splits;
    }
    case Behavior::kMergedWithPrevious: {
      bool previous_match = false;
      for (const PatternPiece& piece : matches) {
        if (piece.is_match && !previous_match && !splits.empty()) {
          splits.back().end = piece.end;
        } else {
          splits.push_back(piece);
        }
        previous_match = piece.is_match;
      }
      return splits;
    }
    case Behavior::kMergedWithNext: {
      bool previous_match = false;
      for (auto it = matches.rbegin(); it != matches.rend(); ++it) {
        if (it->is_match && !previous_match && !splits.empty()) {
          splits.back().begin = it->begin;
        } else {
          splits.push_back(*it);
        }
        previous_match = it->is_match;
      }
      return {splits.rbegin(), splits.rend()};
    }
  }
  return matches;
}

// find_matches for a character predicate: each matching character is its own match.
std::vector<PatternPiece> CharMatches(std::string_view text,
                                      const std::function<bool(char32_t)>& predicate) {
  std::vector<PatternPiece> pieces;
  if (text.empty()) {
    pieces.push_back({0, 0, false});
    return pieces;
  }
  size_t last = 0;
  for (size_t pos = 0; pos < text.size();) {
    const size_t begin = pos;
    const char32_t cp = DecodeUtf8(text, &pos);
    if (predicate(cp)) {
      if (last < begin) pieces.push_back({last, begin, false});
      pieces.push_back({begin, pos, true});
      last = pos;
    }
  }
  if (last < text.size()) pieces.push_back({last, text.size(), false});
  return pieces;
}

// Replaces each piece by its splits, dropping empty ones.
void SplitEach(std::vector<PreToken>* pieces,
               const std::function<std::vector<PatternPiece>(const PreToken&)>& split) {
  std::vector<PreToken> out;
  out.reserve(pieces->size() * 2);
  for (const PreToken& piece : *pieces) {
    for (const PatternPiece& part : split(piece)) {
      if (part.end == part.begin) continue;
      out.push_back({piece.text.substr(part.begin, part.end - part.begin),
                     piece.at_start && part.begin == 0});
    }
  }
  *pieces = std::move(out);
}

const std::array<std::string, 256>& ByteChars() {
  static const std::array<std::string, 256> table = [] {
    std::array<std::string, 256> chars;
    std::array<bool, 256> printable{};
    for (int b = '!'; b <= '~'; ++b) printable[b] = true;
    for (int b = 0xA1; b <= 0xAC; ++b) printable[b] = true;
    for (int b = 0xAE; b <= 0xFF; ++b) printable[b] = true;
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      AppendUtf8(printable[b] ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + n++),
                 &chars[b]);
    }
    return chars;
  }();
  return table;
}

class ByteLevelPreTokenizer : public HfPreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex, const std::string& where)
      : add_prefix_space_(add_prefix_space) {
    if (use_regex) regex_.emplace(HfPattern::Regex(kGpt2Regex, where + " (GPT-2 regex)"));
  }
  void PreTokenize(std::vector<PreToken>* pieces) const override {
    if (add_prefix_space_) {
      for (PreToken& piece : *pieces) {
        if (piece.text.empty() || piece.text[0] != ' ') piece.text = " " + piece.text;
      }
    }
    if (regex_) {
      SplitEach(pieces, [&](const PreToken& piece) { return regex_->FindMatches(piece.text); });
    }
    const auto& chars = ByteChars();
    for (PreToken& piece : *pieces) {
      std::string mapped;
      mapped.reserve(piece.text.size() * 2);
      for (unsigned char b : piece.text) mapped += chars[b];
      piece.text = std::move(mapped);
    }
  }

 private:
  bool add_prefix_space_;
  std::optional<HfPattern> regex_;
};

class SplitPreTokenizer : public HfPreTokenizer {
 public:
  SplitPreTokenizer(HfPattern pattern, Behavior behavior, bool invert)
      : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}
  void PreTokenize(std::vector<PreToken>* pieces) const override {
    SplitEach(pieces, [&](const PreToken& piece) {
      std::vector<PatternPiece> matches = pattern_.FindMatches(piece.text);
      if (invert_) {
        for (PatternPiece& match : matches) match.is_match = !match.is_match;
      }
      return ApplyBehavior(std::move(matches), behavior_);
    });
  }

 private:
  HfPattern pattern_;
  Behavior behavior_;
  bool invert_;
};

class CharSplitPreTokenizer : public HfPreTokenizer {
 public:
  CharSplitPreTokenizer(std::function<bool(char32_t)> predicate, Behavior behavior)
      : predicate_(std::move(predicate)), behavior_(behavior) {}
  void PreTokenize(std::vector<PreToken>* pieces) const override {
    SplitEach(pieces, [&](const PreToken& piece) {
      return ApplyBehavior(CharMatches(piece.text, predicate_), behavior_);
    });
  }

 private:
  std::function<bool(char32_t)> predicate_;
  Behavior behavior_;
};

using PrependScheme = MetaspacePrependScheme;

class MetaspacePreTokenizer : public HfPreTokenizer {
 public:
  MetaspacePreTokenizer(char32_t replacement, PrependScheme scheme, bool split)
      : replacement_(replacement), scheme_(scheme), split_(split) {
    AppendUtf8(replacement, &replacement_text_);
  }
  void PreTokenize(std::vector<PreToken>* pieces) const override {
    for (PreToken& piece : *pieces) {
      std::string replaced;
      replaced.reserve(piece.text.size() + 8);
      for (char c : piece.text) {
        if (c == ' ') {
          replaced += replacement_text_;
        } else {
          replaced += c;
        }
      }
      const bool starts = replaced.compare(0, replacement_text_.size(), replacement_text_) == 0;
      if (!replaced.empty() && !starts &&
          (scheme_ == PrependScheme::kAlways ||
           (scheme_ == PrependScheme::kFirst && piece.at_start))) {
        replaced.insert(0, replacement_text_);
      }
      piece.text = std::move(replaced);
    }
    if (split_) {
      const char32_t replacement = replacement_;
      SplitEach(pieces, [replacement](const PreToken& piece) {
        return ApplyBehavior(
            CharMatches(piece.text, [replacement](char32_t cp) { return cp == replacement; }),
            Behavior::kMergedWithNext);
      });
    }
  }

 private:
  char32_t replacement_;
  std::string replacement_text_;
  PrependScheme scheme_;
  bool split_;
};

class SequencePreTokenizer : public HfPreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<HfPreTokenizer>> steps)
      : steps_(std::move(steps)) {}
  void PreTokenize(std::vector<PreToken>* pieces) const override {
    for (const auto& step : steps_) step->PreTokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<HfPreTokenizer>> steps_;
};

}  // namespace

const std::string& ByteLevelChar(unsigned char byte) { return ByteChars()[byte]; }

int ByteLevelByte(char32_t cp) {
  static const std::array<int, 324> table = [] {
    std::array<int, 324> inverse;
    inverse.fill(-1);
    for (int b = 0; b < 256; ++b) {
      size_t pos = 0;
      inverse[DecodeUtf8(ByteChars()[b], &pos)] = b;
    }
    return inverse;
  }();
  return cp < table.size() ? table[cp] : -1;
}

MetaspacePrependScheme ParseMetaspaceScheme(const json& object, const std::string& where) {
  if (const auto it = object.find("prepend_scheme"); it != object.end() && !it->is_null()) {
    if (!it->is_string()) throw TrainError(where + ".prepend_scheme: must be a string");
    const std::string scheme = it->get<std::string>();
    if (scheme == "always") return PrependScheme::kAlways;
    if (scheme == "first") return PrependScheme::kFirst;
    if (scheme == "never") return PrependScheme::kNever;
    throw TrainError(where + ".prepend_scheme: \"" + scheme +
                     "\" is not one of first, always, never");
  }
  return OptionalBool(object, "add_prefix_space", true, where) ? PrependScheme::kAlways
                                                               : PrependScheme::kNever;
}

char32_t ParseMetaspaceReplacement(const json& object, const std::string& where) {
  const std::string replacement = RequireString(object, "replacement", where);
  size_t pos = 0;
  const char32_t cp = replacement.empty() ? 0 : DecodeUtf8(replacement, &pos);
  if (replacement.empty() || pos != replacement.size()) {
    throw TrainError(where + ".replacement: must be one character");
  }
  return cp;
}

std::unique_ptr<HfPreTokenizer> ParseHfPreTokenizer(const json& pre_tokenizer,
                                                    const std::string& where) {
  if (pre_tokenizer.is_null()) return nullptr;
  const std::string type = RequireType(pre_tokenizer, where);
  if (type == "ByteLevel") {
    return std::make_unique<ByteLevelPreTokenizer>(
        OptionalBool(pre_tokenizer, "add_prefix_space", true, where),
        OptionalBool(pre_tokenizer, "use_regex", true, where), where);
  }
  if (type == "Split") {
    return std::make_unique<SplitPreTokenizer>(
        HfPattern(RequireField(pre_tokenizer, "pattern", where), where + ".pattern"),
        ParseBehavior(pre_tokenizer, where), OptionalBool(pre_tokenizer, "invert", false, where));
  }
  if (type == "Digits") {
    return std::make_unique<CharSplitPreTokenizer>(
        IsNumeric, OptionalBool(pre_tokenizer, "individual_digits", false, where)
                       ? Behavior::kIsolated
                       : Behavior::kContiguous);
  }
  if (type == "WhitespaceSplit") {
    return std::make_unique<CharSplitPreTokenizer>(IsWhiteSpace, Behavior::kRemoved);
  }
  if (type == "Metaspace") {
    return std::make_unique<MetaspacePreTokenizer>(
        ParseMetaspaceReplacement(pre_tokenizer, where), ParseMetaspaceScheme(pre_tokenizer, where),
        OptionalBool(pre_tokenizer, "split", true, where));
  }
  if (type == "Sequence") {
    const json& list = RequireField(pre_tokenizer, "pretokenizers", where);
    if (!list.is_array()) throw TrainError(where + ".pretokenizers: must be an array");
    std::vector<std::unique_ptr<HfPreTokenizer>> steps;
    for (size_t i = 0; i < list.size(); ++i) {
      auto step = ParseHfPreTokenizer(list[i], where + ".pretokenizers[" + std::to_string(i) + "]");
      if (step) steps.push_back(std::move(step));
    }
    return std::make_unique<SequencePreTokenizer>(std::move(steps));
  }
  throw TrainError(where + ".type: pre-tokenizer \"" + type +
                   "\" is not supported (ByteLevel, Split, Digits, Metaspace, WhitespaceSplit, "
                   "Sequence are)");
}

}  // namespace tuneledger::train
