#include "lm/text/unicode.h"

#include <algorithm>
#include <array>
#include <utility>

namespace tuneledger::train {
namespace {

struct CategoryRun {
  uint32_t first;
  uint8_t category;
};
struct CombiningRun {
  uint32_t first;
  uint8_t ccc;
};
struct Decomposition {
  uint32_t cp;
  uint8_t length;
  uint32_t to[4];
};
struct Composition {
  uint32_t first;
  uint32_t second;
  uint32_t composite;
};
struct Lowercase {
  uint32_t cp;
  uint8_t length;
  uint32_t to[3];
};

#include "lm/text/unicode_tables.inc"

// Hangul syllables compose and decompose algorithmically (Unicode 3.12).
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr int kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount,
              kSCount = kLCount * kNCount;

uint8_t CombiningClass(char32_t cp) {
  if (cp < 0x300) return 0;
  const auto* end = std::end(kCombiningClasses);
  const auto* it = std::upper_bound(std::begin(kCombiningClasses), end, cp,
                                    [](char32_t c, const CombiningRun& r) { return c < r.first; });
  return it == std::begin(kCombiningClasses) ? 0 : (it - 1)->ccc;
}

const Decomposition* FindDecomposition(char32_t cp) {
  const auto* end = std::end(kDecompositions);
  const auto* it = std::lower_bound(std::begin(kDecompositions), end, cp,
                                    [](const Decomposition& d, char32_t c) { return d.cp < c; });
  return it != end && it->cp == cp ? it : nullptr;
}

// The primary composite of (first, second), or 0.
char32_t Compose(char32_t first, char32_t second) {
  if (first >= kLBase && first < kLBase + kLCount && second >= kVBase &&
      second < kVBase + kVCount) {
    return kSBase + ((first - kLBase) * kVCount + (second - kVBase)) * kTCount;
  }
  if (first >= kSBase && first < kSBase + kSCount && (first - kSBase) % kTCount == 0 &&
      second > kTBase && second < kTBase + kTCount) {
    return first + (second - kTBase);
  }
  const auto* end = std::end(kCompositions);
  const auto* it =
      std::lower_bound(std::begin(kCompositions), end, std::make_pair(first, second),
                       [](const Composition& c, std::pair<char32_t, char32_t> key) {
                         return std::make_pair(char32_t{c.first}, char32_t{c.second}) < key;
                       });
  return it != end && it->first == first && it->second == second ? it->composite : 0;
}

void Decompose(char32_t cp, std::vector<char32_t>* out) {
  if (cp >= kSBase && cp < kSBase + kSCount) {
    const int s = cp - kSBase;
    out->push_back(kLBase + s / kNCount);
    out->push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount != 0) out->push_back(kTBase + s % kTCount);
    return;
  }
  if (const Decomposition* d = FindDecomposition(cp)) {
    out->insert(out->end(), d->to, d->to + d->length);
  } else {
    out->push_back(cp);
  }
}

// Lengths of a maximal prefix that is a valid start of a UTF-8 sequence (Unicode Table 3-7).
// Returns the length of the complete sequence at `p` (1..4), or 0 with *valid_prefix set to how
// many bytes form the longest valid-but-truncated prefix (at least 1).
size_t Utf8SequenceLength(const unsigned char* p, size_t n, size_t* valid_prefix) {
  const unsigned char b0 = p[0];
  *valid_prefix = 1;
  if (b0 < 0x80) return 1;
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  for (size_t i = 1; i < need; ++i) {
    if (i >= n) return 0;
    const unsigned char b = p[i];
    if (b < (i == 1 ? lo : 0x80) || b > (i == 1 ? hi : 0xBF)) return 0;
    *valid_prefix = i + 1;
  }
  return need;
}

}  // namespace

uint32_t CategoryMaskByName(std::string_view name) {
  static const std::pair<std::string_view, uint32_t> kGroups[] = {
      {"L", kLetterMask},
      {"Letter", kLetterMask},
      {"M", kMarkMask},
      {"Mark", kMarkMask},
      {"Combining_Mark", kMarkMask},
      {"N", kNumberMask},
      {"Number", kNumberMask},
      {"P", CategoryBit(Category::kPc) | CategoryBit(Category::kPd) | CategoryBit(Category::kPs) |
                CategoryBit(Category::kPe) | CategoryBit(Category::kPi) |
                CategoryBit(Category::kPf) | CategoryBit(Category::kPo)},
      {"S", CategoryBit(Category::kSm) | CategoryBit(Category::kSc) | CategoryBit(Category::kSk) |
                CategoryBit(Category::kSo)},
      {"Z", CategoryBit(Category::kZs) | CategoryBit(Category::kZl) | CategoryBit(Category::kZp)},
      {"C", CategoryBit(Category::kCn) | CategoryBit(Category::kCc) | CategoryBit(Category::kCf) |
                CategoryBit(Category::kCs) | CategoryBit(Category::kCo)},
      {"L&", CategoryBit(Category::kLu) | CategoryBit(Category::kLl) | CategoryBit(Category::kLt)},
  };
  for (const auto& [group, mask] : kGroups) {
    if (name == group) return mask;
  }
  static constexpr const char* kNames[kCategoryCount] = {
      "Cn", "Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No", "Pc", "Pd", "Ps",
      "Pe", "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So", "Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co"};
  for (int i = 0; i < kCategoryCount; ++i) {
    if (name == kNames[i]) return 1u << i;
  }
  return 0;
}

Category GetCategory(char32_t cp) {
  if (cp >= 0x110000) return Category::kCn;
  const auto* it = std::upper_bound(std::begin(kCategoryRanges), std::end(kCategoryRanges), cp,
                                    [](char32_t c, const CategoryRun& r) { return c < r.first; });
  return static_cast<Category>((it - 1)->category);
}

bool IsWhiteSpace(char32_t cp) {
  if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
  switch (cp) {
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

bool IsWordChar(char32_t cp) {
  if (cp < 0x80) {
    return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') ||
           cp == '_';
  }
  if (cp == 0x200C || cp == 0x200D) return true;
  const uint32_t bit = CategoryBit(GetCategory(cp));
  return (bit & (kLetterMask | kMarkMask | CategoryBit(Category::kNl) | CategoryBit(Category::kNd) |
                 CategoryBit(Category::kPc))) != 0;
}

bool IsNumeric(char32_t cp) {
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  return (CategoryBit(GetCategory(cp)) & kNumberMask) != 0;
}

char32_t DecodeUtf8(std::string_view text, size_t* pos) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data()) + *pos;
  const size_t n = text.size() - *pos;
  if (p[0] < 0x80) {
    ++*pos;
    return p[0];
  }
  size_t prefix;
  const size_t length = Utf8SequenceLength(p, n, &prefix);
  if (length == 0) {
    ++*pos;
    return 0xFFFD;
  }
  char32_t cp = p[0] & (length == 2 ? 0x1F : length == 3 ? 0x0F : 0x07);
  for (size_t i = 1; i < length; ++i) cp = (cp << 6) | (p[i] & 0x3F);
  *pos += length;
  return cp;
}

void AppendUtf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string Utf8Lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  size_t i = 0;
  while (i < bytes.size()) {
    size_t prefix;
    const size_t length = Utf8SequenceLength(p + i, bytes.size() - i, &prefix);
    if (length == 0) {
      out += "\xEF\xBF\xBD";
      i += prefix;
    } else {
      out.append(bytes.substr(i, length));
      i += length;
    }
  }
  return out;
}

bool IsValidUtf8(std::string_view bytes) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  size_t i = 0;
  while (i < bytes.size()) {
    if (p[i] < 0x80) {
      ++i;
      continue;
    }
    size_t prefix;
    const size_t length = Utf8SequenceLength(p + i, bytes.size() - i, &prefix);
    if (length == 0) return false;
    i += length;
  }
  return true;
}

std::string ToNfc(std::string_view text) {
  // Quick check: below U+0300 nothing decomposes or combines.
  bool simple = true;
  for (unsigned char c : text) {
    if (c >= 0xCC) {  // lead bytes of U+0300 and above
      simple = false;
      break;
    }
  }
  if (simple) return std::string(text);
  // 1. Full canonical decomposition.
  std::vector<char32_t> cps;
  cps.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) Decompose(DecodeUtf8(text, &pos), &cps);
  // 2. Canonical ordering: a stable sort of each run of non-starters by combining class.
  for (size_t i = 0; i < cps.size();) {
    if (CombiningClass(cps[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < cps.size() && CombiningClass(cps[j]) != 0) ++j;
    std::stable_sort(cps.begin() + i, cps.begin() + j,
                     [](char32_t a, char32_t b) { return CombiningClass(a) < CombiningClass(b); });
    i = j;
  }
  // 3. Canonical composition (Unicode 3.11, D117).
  std::vector<char32_t> out;
  out.reserve(cps.size());
  size_t starter = SIZE_MAX;  // index in `out` of the last starter
  int last_ccc = -1;          // class of the last character appended after that starter
  for (char32_t cp : cps) {
    const int ccc = CombiningClass(cp);
    if (starter != SIZE_MAX) {
      // Blocked when a character between the starter and cp has class 0 or >= ccc.
      const bool blocked = last_ccc != -1 && (last_ccc == 0 || last_ccc >= ccc);
      if (!blocked) {
        if (const char32_t composite = Compose(out[starter], cp)) {
          out[starter] = composite;
          continue;
        }
      }
    }
    if (ccc == 0) {
      starter = out.size();
      last_ccc = -1;
    } else {
      last_ccc = ccc;
    }
    out.push_back(cp);
  }
  std::string result;
  result.reserve(text.size());
  for (char32_t cp : out) AppendUtf8(cp, &result);
  return result;
}

std::string ToLowercase(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[pos]);
    if (c < 0x80) {
      out.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c));
      ++pos;
      continue;
    }
    const char32_t cp = DecodeUtf8(text, &pos);
    const auto* end = std::end(kLowercase);
    const auto* it = std::lower_bound(std::begin(kLowercase), end, cp,
                                      [](const Lowercase& l, char32_t x) { return l.cp < x; });
    if (it != end && it->cp == cp) {
      for (int i = 0; i < it->length; ++i) AppendUtf8(it->to[i], &out);
    } else {
      AppendUtf8(cp, &out);
    }
  }
  return out;
}

}  // namespace tuneledger::train
