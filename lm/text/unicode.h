// Unicode facts the Hugging Face tokenizer needs and the C++ standard library lacks: UTF-8
// decoding and encoding, the general category of a code point (for \p{L}, \p{N}, ...), the
// White_Space property, NFC and per-character lowercase. The data comes from
// unicode_tables.inc, generated from Python's unicodedata by unicode_tables_gen.py (its Unicode
// version is kUnicodeVersion; the tokenizers library's Oniguruma may be one version newer, which
// matters only for characters assigned in between).
//
// Thread safety: pure functions over immutable tables.
#ifndef TUNELEDGER_LM_TEXT_UNICODE_H_
#define TUNELEDGER_LM_TEXT_UNICODE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tuneledger::train {

// General categories, in unicode_tables_gen.py's order.
enum class Category : uint8_t {
  kCn,
  kLu,
  kLl,
  kLt,
  kLm,
  kLo,
  kMn,
  kMc,
  kMe,
  kNd,
  kNl,
  kNo,
  kPc,
  kPd,
  kPs,
  kPe,
  kPi,
  kPf,
  kPo,
  kSm,
  kSc,
  kSk,
  kSo,
  kZs,
  kZl,
  kZp,
  kCc,
  kCf,
  kCs,
  kCo,
};
inline constexpr int kCategoryCount = 30;
inline constexpr uint32_t CategoryBit(Category c) { return 1u << static_cast<int>(c); }
inline constexpr uint32_t kLetterMask = CategoryBit(Category::kLu) | CategoryBit(Category::kLl) |
                                        CategoryBit(Category::kLt) | CategoryBit(Category::kLm) |
                                        CategoryBit(Category::kLo);
inline constexpr uint32_t kMarkMask =
    CategoryBit(Category::kMn) | CategoryBit(Category::kMc) | CategoryBit(Category::kMe);
inline constexpr uint32_t kNumberMask =
    CategoryBit(Category::kNd) | CategoryBit(Category::kNl) | CategoryBit(Category::kNo);

// The mask of a category name as Oniguruma spells it in \p{...}: one- or two-letter
// abbreviations ("L", "Lu", "N", ...) and the long names of the groups ("Letter", "Number",
// ...). 0 for an unknown name.
uint32_t CategoryMaskByName(std::string_view name);

Category GetCategory(char32_t cp);
// Unicode White_Space (what \s matches in Oniguruma and Rust's char::is_whitespace).
bool IsWhiteSpace(char32_t cp);
// Rust's regex \w: Alphabetic (approximated as L + Nl), marks, Nd, Pc, ZWNJ/ZWJ.
bool IsWordChar(char32_t cp);
// Rust's char::is_numeric: Nd, Nl, No.
bool IsNumeric(char32_t cp);

// Decodes one code point at `text[*pos]` and advances *pos. Invalid UTF-8 yields U+FFFD and
// advances by one byte (input is checked before it gets here; this only keeps it total).
char32_t DecodeUtf8(std::string_view text, size_t* pos);
void AppendUtf8(char32_t cp, std::string* out);
// Rust's String::from_utf8_lossy: each maximal invalid subsequence becomes U+FFFD.
std::string Utf8Lossy(std::string_view bytes);
bool IsValidUtf8(std::string_view bytes);

// Canonical composition (NFC) of valid UTF-8.
std::string ToNfc(std::string_view text);
// Per-character lowercase (Rust's char::to_lowercase, no final-sigma context).
std::string ToLowercase(std::string_view text);

}  // namespace tuneledger::train

#endif  // TUNELEDGER_LM_TEXT_UNICODE_H_
