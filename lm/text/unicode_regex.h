// A small backtracking regular-expression matcher over Unicode code points, for the split
// patterns of Hugging Face tokenizers (GPT-2's ByteLevel regex, the Llama 3 / Qwen2 Split
// patterns, Mistral's). std::regex has no \p{...} classes, and these patterns are Oniguruma's
// (leftmost-first alternation, greedy backtracking quantifiers), so this implements exactly the
// constructs they use and refuses the rest:
//   literals and escapes (\n \r \t \f \v \xHH \x{H..} \uHHHH, escaped punctuation), .
//   classes [...] [^...] with ranges, \p{Cat} \P{Cat} \pL (general categories and their groups),
//   \s \S \d \D \w \W (Unicode, as Oniguruma's default syntax)
//   groups (...) (?:...) (?i:...) and a leading (?i), lookahead (?=...) (?!...)
//   alternation |, quantifiers ? * + {n} {n,} {n,m} (greedy, lazy with a trailing ?,
//   possessive with a trailing +), anchors ^ $ \A \z
// Case-insensitive matching folds ASCII plus the three non-ASCII letters that fold onto ASCII
// (U+017F long s, U+212A Kelvin, U+212B Angstrom).
//
// Thread safety: immutable after Compile; Find may be called from several threads.
#ifndef TUNELEDGER_LM_TEXT_UNICODE_REGEX_H_
#define TUNELEDGER_LM_TEXT_UNICODE_REGEX_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tuneledger::train {

// Text prepared for matching: code points, their byte offsets and the per-code-point facts the
// classes test (general category, White_Space), looked up once per character.
class RegexInput {
 public:
  explicit RegexInput(std::string_view utf8);
  size_t size() const { return cps_.size(); }
  char32_t cp(size_t i) const { return cps_[i]; }
  uint8_t category(size_t i) const { return props_[i] & 0x1F; }
  bool white_space(size_t i) const { return (props_[i] & 0x80) != 0; }
  // Byte offset of code point i; byte_offset(size()) is the text's length.
  size_t byte_offset(size_t i) const { return offsets_[i]; }

 private:
  std::vector<char32_t> cps_;
  std::vector<uint8_t> props_;
  std::vector<uint32_t> offsets_;
};

class UnicodeRegex {
 public:
  // Throws TrainError "<where>: <what is unsupported or malformed>".
  static UnicodeRegex Compile(std::string_view pattern, const std::string& where);

  // Non-overlapping matches, leftmost first (Oniguruma's find_iter), as code point ranges
  // [begin, end). Empty matches are skipped.
  std::vector<std::pair<size_t, size_t>> FindAll(const RegexInput& input) const;

  struct CharClass {
    std::vector<std::pair<char32_t, char32_t>> ranges;
    uint32_t categories = 0;  // bit c: category c is in the class
    bool white_space = false;
    bool not_white_space = false;
    bool negated = false;
    uint64_t ascii[2] = {0, 0};  // membership of U+0000..U+007F, negation applied
    bool Contains(const RegexInput& input, size_t i) const;
  };
  struct Inst {
    enum Op : uint8_t {
      kChar,      // cp == c
      kCharFold,  // cp folds to c (case-insensitive)
      kClass,     // class x
      kAny,       // any but \n
      kSplit,     // try x, then y
      kJmp,       // goto x
      kLook,      // lookahead program at x..; y: 1 = positive, 0 = negative
      kBol,       // start of text (^ in single-line text, \A)
      kEol,       // end of text ($, \z)
      kAtomic,    // run program at x.. atomically (possessive quantifiers)
      kMatch,
    };
    Op op;
    char32_t c = 0;
    int x = 0;
    int y = 0;
  };

 private:
  bool MatchAt(int pc, const RegexInput& input, size_t pos, size_t* end) const;

  std::vector<Inst> program_;
  std::vector<CharClass> classes_;
  friend class RegexCompiler;
};

}  // namespace tuneledger::train

#endif  // TUNELEDGER_LM_TEXT_UNICODE_REGEX_H_
