#include "lm/text/unicode_regex.h"

#include <memory>

#include "lm/text/unicode.h"
#include "lm/trainer_error.h"

namespace tuneledger::train {
namespace {

// Simple case folding onto the pattern's (lowercase) letters.
char32_t Fold(char32_t cp) {
  if (cp >= 'A' && cp <= 'Z') return cp + 32;
  if (cp == 0x17F) return 's';
  if (cp == 0x212A) return 'k';
  if (cp == 0x212B) return 0xE5;
  if (cp >= 0xC0 && cp <= 0xDE && cp != 0xD7) return cp + 32;
  return cp;
}

struct Node {
  enum Kind { kEmpty, kChar, kClass, kAny, kConcat, kAlt, kRepeat, kLook, kBol, kEol } kind;
  char32_t c = 0;
  bool fold = false;
  int class_index = 0;
  std::vector<std::unique_ptr<Node>> children;
  int min = 0, max = 0;  // kRepeat; max -1 = unbounded
  bool greedy = true, possessive = false;
  bool positive = false;  // kLook
};

bool Nullable(const Node& node) {
  switch (node.kind) {
    case Node::kEmpty:
    case Node::kLook:
    case Node::kBol:
    case Node::kEol:
      return true;
    case Node::kChar:
    case Node::kClass:
    case Node::kAny:
      return false;
    case Node::kConcat:
      for (const auto& child : node.children) {
        if (!Nullable(*child)) return false;
      }
      return true;
    case Node::kAlt:
      for (const auto& child : node.children) {
        if (Nullable(*child)) return true;
      }
      return false;
    case Node::kRepeat:
      return node.min == 0 || Nullable(*node.children[0]);
  }
  return true;
}

}  // namespace

// Parses a pattern into a Node tree, then emits the backtracking program.
class RegexCompiler {
 public:
  RegexCompiler(std::string_view pattern, const std::string& where, UnicodeRegex* regex)
      : where_(where), regex_(regex) {
    for (size_t pos = 0; pos < pattern.size();) pattern_.push_back(DecodeUtf8(pattern, &pos));
  }

  void Run() {
    bool fold = false;
    std::unique_ptr<Node> root = ParseAlternation(&fold);
    if (pos_ != pattern_.size()) Fail("unbalanced ')'");
    Emit(*root);
    regex_->program_.push_back({UnicodeRegex::Inst::kMatch});
  }

 private:
  [[noreturn]] void Fail(const std::string& what) const {
    throw TrainError(where_ + ": regex at character " + std::to_string(pos_) + ": " + what);
  }
  bool AtEnd() const { return pos_ >= pattern_.size(); }
  char32_t Peek(size_t ahead = 0) const {
    return pos_ + ahead < pattern_.size() ? pattern_[pos_ + ahead] : 0;
  }

  std::unique_ptr<Node> Make(Node::Kind kind) {
    auto node = std::make_unique<Node>();
    node->kind = kind;
    return node;
  }

  // `fold` is the group's case-insensitivity flag; (?i) inside a group turns it on for the rest
  // of that group.
  std::unique_ptr<Node> ParseAlternation(bool* fold) {
    auto alt = Make(Node::kAlt);
    alt->children.push_back(ParseConcat(fold));
    while (!AtEnd() && Peek() == '|') {
      ++pos_;
      alt->children.push_back(ParseConcat(fold));
    }
    if (alt->children.size() == 1) return std::move(alt->children[0]);
    return alt;
  }

  std::unique_ptr<Node> ParseConcat(bool* fold) {
    auto concat = Make(Node::kConcat);
    while (!AtEnd() && Peek() != '|' && Peek() != ')') {
      if (Peek() == '(' && Peek(1) == '?' && Peek(2) == 'i' && Peek(3) == ')') {
        pos_ += 4;
        *fold = true;
        continue;
      }
      std::unique_ptr<Node> atom = ParseAtom(*fold);
      concat->children.push_back(ParseQuantifier(std::move(atom)));
    }
    if (concat->children.size() == 1) return std::move(concat->children[0]);
    return concat;
  }

  bool ParseNumber(int* value) {
    if (AtEnd() || Peek() < '0' || Peek() > '9') return false;
    int v = 0;
    while (!AtEnd() && Peek() >= '0' && Peek() <= '9') {
      v = v * 10 + static_cast<int>(Peek() - '0');
      if (v > 1000) Fail("repeat count above 1000");
      ++pos_;
    }
    *value = v;
    return true;
  }

  std::unique_ptr<Node> ParseQuantifier(std::unique_ptr<Node> atom) {
    if (AtEnd()) return atom;
    int min, max;
    bool braces = false;
    const char32_t c = Peek();
    if (c == '?') {
      min = 0, max = 1;
      ++pos_;
    } else if (c == '*') {
      min = 0, max = -1;
      ++pos_;
    } else if (c == '+') {
      min = 1, max = -1;
      ++pos_;
    } else if (c == '{') {
      const size_t start = pos_;
      ++pos_;
      if (!ParseNumber(&min)) {
        pos_ = start;  // not a quantifier: '{' is a literal (Oniguruma)
        return atom;
      }
      max = min;
      if (Peek() == ',') {
        ++pos_;
        if (!ParseNumber(&max)) max = -1;
      }
      if (Peek() != '}') {
        pos_ = start;
        return atom;
      }
      ++pos_;
      if (max != -1 && max < min) Fail("repeat {n,m} with m < n");
      braces = true;
    } else {
      return atom;
    }
    auto repeat = Make(Node::kRepeat);
    repeat->min = min;
    repeat->max = max;
    if (Peek() == '?') {
      repeat->greedy = false;
      ++pos_;
    } else if (Peek() == '+') {
      if (braces) Fail("'+' after {n,m} is not supported");
      repeat->possessive = true;
      ++pos_;
    }
    if (atom->kind == Node::kBol || atom->kind == Node::kEol || atom->kind == Node::kLook) {
      Fail("quantifier after an assertion");
    }
    if (max == -1 && Nullable(*atom)) Fail("unbounded repeat of something that can be empty");
    repeat->children.push_back(std::move(atom));
    return repeat;
  }

  std::unique_ptr<Node> ParseAtom(bool fold) {
    const char32_t c = Peek();
    ++pos_;
    switch (c) {
      case '(': {
        bool inner_fold = fold;
        std::unique_ptr<Node> node;
        if (Peek() == '?') {
          ++pos_;
          const char32_t kind = Peek();
          ++pos_;
          if (kind == ':') {
            node = ParseAlternation(&inner_fold);
          } else if (kind == 'i' && Peek() == ':') {
            ++pos_;
            inner_fold = true;
            node = ParseAlternation(&inner_fold);
          } else if (kind == '=' || kind == '!') {
            auto look = Make(Node::kLook);
            look->positive = kind == '=';
            look->children.push_back(ParseAlternation(&inner_fold));
            node = std::move(look);
          } else {
            Fail("unsupported group (?" + std::string(1, static_cast<char>(kind)) + "...)");
          }
        } else {
          node = ParseAlternation(&inner_fold);
        }
        if (AtEnd() || Peek() != ')') Fail("missing ')'");
        ++pos_;
        return node;
      }
      case '[':
        return ParseClass(fold);
      case '.':
        return Make(Node::kAny);
      case '^':
        return Make(Node::kBol);
      case '$':
        return Make(Node::kEol);
      case '*':
      case '+':
      case '?':
        Fail("quantifier without an operand");
      case ')':
        Fail("unbalanced ')'");
      case '\\':
        return ParseEscape(fold);
      default:
        return Literal(c, fold);
    }
  }

  // Under (?i) a literal matches every character that folds onto its folded form.
  std::unique_ptr<Node> Literal(char32_t c, bool fold) {
    auto node = Make(Node::kChar);
    node->fold = fold;
    node->c = fold ? Fold(c) : c;
    return node;
  }

  // A backslash escape outside a class: a class escape, an anchor or a literal.
  std::unique_ptr<Node> ParseEscape(bool fold) {
    if (AtEnd()) Fail("trailing backslash");
    const char32_t c = Peek();
    if (c == 'A') {
      ++pos_;
      return Make(Node::kBol);
    }
    if (c == 'z') {
      ++pos_;
      return Make(Node::kEol);
    }
    UnicodeRegex::CharClass cls;
    if (ParseClassEscape(&cls)) return AddClass(std::move(cls), fold);
    return Literal(ParseCharEscape(), fold);
  }

  // \s \S \d \D \w \W \p{..} \P{..}: adds to `cls` and returns true; else leaves pos_ alone.
  bool ParseClassEscape(UnicodeRegex::CharClass* cls) {
    const char32_t c = Peek();
    switch (c) {
      case 's':
        cls->white_space = true;
        break;
      case 'S':
        cls->not_white_space = true;
        break;
      case 'd':
        cls->categories |= CategoryBit(Category::kNd);
        break;
      case 'D':
        cls->categories |= ~CategoryBit(Category::kNd);
        break;
      case 'w':
        cls->categories |= kWordMask;
        break;
      case 'W':
        cls->categories |= ~kWordMask;
        break;
      case 'p':
      case 'P': {
        ++pos_;
        std::string name;
        if (Peek() == '{') {
          ++pos_;
          while (!AtEnd() && Peek() != '}') name.push_back(static_cast<char>(Peek())), ++pos_;
          if (AtEnd()) Fail("missing '}' after \\p{");
        } else {
          name.push_back(static_cast<char>(Peek()));
        }
        bool negate = c == 'P';
        if (!name.empty() && name[0] == '^') {
          negate = !negate;
          name.erase(0, 1);
        }
        const uint32_t mask = CategoryMaskByName(name);
        if (mask == 0) Fail("unsupported property \\p{" + name + "} (general categories only)");
        cls->categories |= negate ? ~mask & ((1u << kCategoryCount) - 1) : mask;
        break;
      }
      default:
        return false;
    }
    ++pos_;
    return true;
  }

  char32_t ParseHex(int digits) {
    char32_t value = 0;
    for (int i = 0; i < digits; ++i) {
      const char32_t h = Peek();
      int d;
      if (h >= '0' && h <= '9') {
        d = static_cast<int>(h - '0');
      } else if (h >= 'a' && h <= 'f') {
        d = static_cast<int>(h - 'a' + 10);
      } else if (h >= 'A' && h <= 'F') {
        d = static_cast<int>(h - 'A' + 10);
      } else {
        if (digits == 8 && i > 0) return value;  // \x{...}: variable length
        Fail("bad hex escape");
      }
      value = value * 16 + d;
      ++pos_;
    }
    return value;
  }

  // The character of an escape such as \n, \x41, \., at pos_ (after the backslash).
  char32_t ParseCharEscape() {
    const char32_t c = Peek();
    ++pos_;
    switch (c) {
      case 'n':
        return '\n';
      case 'r':
        return '\r';
      case 't':
        return '\t';
      case 'f':
        return '\f';
      case 'v':
        return '\v';
      case 'a':
        return 0x07;
      case 'e':
        return 0x1B;
      case 'x':
        if (Peek() == '{') {
          ++pos_;
          const char32_t value = ParseHex(8);
          if (Peek() != '}') Fail("missing '}' in \\x{...}");
          ++pos_;
          return value;
        }
        return ParseHex(2);
      case 'u':
        return ParseHex(4);
      default:
        if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
          --pos_;
          Fail("unsupported escape \\" + std::string(1, static_cast<char>(c)));
        }
        return c;  // an escaped punctuation character or symbol stands for itself
    }
  }

  std::unique_ptr<Node> ParseClass(bool fold) {
    UnicodeRegex::CharClass cls;
    if (Peek() == '^') {
      cls.negated = true;
      ++pos_;
    }
    bool first = true;
    while (true) {
      if (AtEnd()) Fail("missing ']'");
      char32_t c = Peek();
      if (c == ']' && !first) {
        ++pos_;
        break;
      }
      first = false;
      if (c == '[') Fail("nested classes are not supported");
      if (c == '&' && Peek(1) == '&') Fail("class intersection && is not supported");
      char32_t low;
      if (c == '\\') {
        ++pos_;
        if (ParseClassEscape(&cls)) continue;
        low = ParseCharEscape();
      } else {
        low = c;
        ++pos_;
      }
      char32_t high = low;
      if (Peek() == '-' && Peek(1) != ']' && pos_ + 1 < pattern_.size()) {
        ++pos_;
        if (Peek() == '\\') {
          ++pos_;
          high = ParseCharEscape();
        } else {
          high = Peek();
          ++pos_;
        }
        if (high < low) Fail("class range out of order");
      }
      cls.ranges.emplace_back(low, high);
      if (fold) {
        for (char32_t x = low; x <= high && x < 0x80; ++x) {
          if (x >= 'a' && x <= 'z') cls.ranges.emplace_back(x - 32, x - 32);
          if (x >= 'A' && x <= 'Z') cls.ranges.emplace_back(x + 32, x + 32);
        }
      }
    }
    return AddClass(std::move(cls), /*fold=*/false);
  }

  std::unique_ptr<Node> AddClass(UnicodeRegex::CharClass cls, bool fold) {
    cls.categories &= (1u << kCategoryCount) - 1;
    // Precompute ASCII membership with negation applied.
    for (char32_t cp = 0; cp < 0x80; ++cp) {
      bool in = (cls.categories >> static_cast<int>(GetCategory(cp))) & 1;
      in =
          in || (cls.white_space && IsWhiteSpace(cp)) || (cls.not_white_space && !IsWhiteSpace(cp));
      for (const auto& [lo, hi] : cls.ranges) in = in || (cp >= lo && cp <= hi);
      if (in != cls.negated) cls.ascii[cp / 64] |= 1ull << (cp % 64);
    }
    auto node = Make(Node::kClass);
    node->class_index = static_cast<int>(regex_->classes_.size());
    regex_->classes_.push_back(std::move(cls));
    return node;
  }

  using Inst = UnicodeRegex::Inst;
  int Pc() const { return static_cast<int>(regex_->program_.size()); }
  int Push(Inst inst) {
    regex_->program_.push_back(inst);
    return Pc() - 1;
  }

  void Emit(const Node& node) {
    auto& program = regex_->program_;
    switch (node.kind) {
      case Node::kEmpty:
        return;
      case Node::kChar:
        Push({node.fold ? Inst::kCharFold : Inst::kChar, node.c});
        return;
      case Node::kClass:
        Push({Inst::kClass, 0, node.class_index});
        return;
      case Node::kAny:
        Push({Inst::kAny});
        return;
      case Node::kBol:
        Push({Inst::kBol});
        return;
      case Node::kEol:
        Push({Inst::kEol});
        return;
      case Node::kConcat:
        for (const auto& child : node.children) Emit(*child);
        return;
      case Node::kAlt: {
        std::vector<int> jumps;
        for (size_t i = 0; i < node.children.size(); ++i) {
          if (i + 1 < node.children.size()) {
            const int split = Push({Inst::kSplit});
            program[split].x = Pc();
            Emit(*node.children[i]);
            jumps.push_back(Push({Inst::kJmp}));
            program[split].y = Pc();
          } else {
            Emit(*node.children[i]);
          }
        }
        for (int jump : jumps) program[jump].x = Pc();
        return;
      }
      case Node::kLook: {
        const int look = Push({Inst::kLook, 0, 0, 0});
        program[look].c = node.positive ? 1 : 0;
        program[look].x = Pc();
        Emit(*node.children[0]);
        Push({Inst::kMatch});
        program[look].y = Pc();
        return;
      }
      case Node::kRepeat: {
        if (node.possessive) {
          const int atomic = Push({Inst::kAtomic});
          program[atomic].x = Pc();
          EmitRepeat(node);
          Push({Inst::kMatch});
          program[atomic].y = Pc();
          return;
        }
        EmitRepeat(node);
        return;
      }
    }
  }

  void EmitRepeat(const Node& node) {
    auto& program = regex_->program_;
    const Node& body = *node.children[0];
    for (int i = 0; i < node.min; ++i) Emit(body);
    if (node.max == -1) {
      const int split = Push({Inst::kSplit});
      Emit(body);
      Push({Inst::kJmp, 0, split});
      const int out = Pc();
      program[split].x = node.greedy ? split + 1 : out;
      program[split].y = node.greedy ? out : split + 1;
      return;
    }
    std::vector<int> splits;
    for (int i = node.min; i < node.max; ++i) {
      splits.push_back(Push({Inst::kSplit}));
      Emit(body);
    }
    const int out = Pc();
    for (int split : splits) {
      program[split].x = node.greedy ? split + 1 : out;
      program[split].y = node.greedy ? out : split + 1;
    }
  }

  static constexpr uint32_t kWordMask = kLetterMask | kMarkMask | CategoryBit(Category::kNd) |
                                        CategoryBit(Category::kNl) | CategoryBit(Category::kPc);

  std::vector<char32_t> pattern_;
  size_t pos_ = 0;
  const std::string& where_;
  UnicodeRegex* regex_;
};

RegexInput::RegexInput(std::string_view utf8) {
  cps_.reserve(utf8.size());
  props_.reserve(utf8.size());
  offsets_.reserve(utf8.size() + 1);
  for (size_t pos = 0; pos < utf8.size();) {
    offsets_.push_back(static_cast<uint32_t>(pos));
    const char32_t cp = DecodeUtf8(utf8, &pos);
    cps_.push_back(cp);
    props_.push_back(static_cast<uint8_t>(static_cast<uint8_t>(GetCategory(cp)) |
                                          (IsWhiteSpace(cp) ? 0x80 : 0)));
  }
  offsets_.push_back(static_cast<uint32_t>(utf8.size()));
}

bool UnicodeRegex::CharClass::Contains(const RegexInput& input, size_t i) const {
  const char32_t cp = input.cp(i);
  if (cp < 0x80) return (ascii[cp / 64] >> (cp % 64)) & 1;
  bool in = (categories >> input.category(i)) & 1;
  if (!in && (white_space || not_white_space)) {
    in = input.white_space(i) ? white_space : not_white_space;
  }
  if (!in) {
    for (const auto& [lo, hi] : ranges) {
      if (cp >= lo && cp <= hi) {
        in = true;
        break;
      }
    }
  }
  return in != negated;
}

UnicodeRegex UnicodeRegex::Compile(std::string_view pattern, const std::string& where) {
  UnicodeRegex regex;
  RegexCompiler(pattern, where, &regex).Run();
  return regex;
}

namespace {

struct Frame {
  int pc;
  size_t pos;
};

}  // namespace

bool UnicodeRegex::MatchAt(int start_pc, const RegexInput& input, size_t start_pos,
                           size_t* end) const {
  // Backtracking with an explicit stack; lookaheads and atomic groups recurse.
  thread_local std::vector<Frame> stack;
  const size_t base = stack.size();
  stack.push_back({start_pc, start_pos});
  const size_t n = input.size();
  bool matched = false;
  while (stack.size() > base && !matched) {
    int pc = stack.back().pc;
    size_t pos = stack.back().pos;
    stack.pop_back();
    while (true) {
      const Inst& inst = program_[pc];
      bool ok = true;
      switch (inst.op) {
        case Inst::kChar:
          ok = pos < n && input.cp(pos) == inst.c;
          ++pos, ++pc;
          break;
        case Inst::kCharFold:
          ok = pos < n && Fold(input.cp(pos)) == inst.c;
          ++pos, ++pc;
          break;
        case Inst::kClass:
          ok = pos < n && classes_[inst.x].Contains(input, pos);
          ++pos, ++pc;
          break;
        case Inst::kAny:
          ok = pos < n && input.cp(pos) != '\n';
          ++pos, ++pc;
          break;
        case Inst::kSplit:
          stack.push_back({inst.y, pos});
          pc = inst.x;
          break;
        case Inst::kJmp:
          pc = inst.x;
          break;
        case Inst::kLook: {
          size_t ignored;
          ok = MatchAt(inst.x, input, pos, &ignored) == (inst.c == 1);
          pc = inst.y;
          break;
        }
        case Inst::kAtomic: {
          size_t after;
          ok = MatchAt(inst.x, input, pos, &after);
          pos = after;
          pc = inst.y;
          break;
        }
        case Inst::kBol:
          ok = pos == 0;
          ++pc;
          break;
        case Inst::kEol:
          ok = pos == n;
          ++pc;
          break;
        case Inst::kMatch:
          *end = pos;
          matched = true;
          break;
      }
      if (!ok || matched) break;
    }
  }
  stack.resize(base);
  return matched;
}

std::vector<std::pair<size_t, size_t>> UnicodeRegex::FindAll(const RegexInput& input) const {
  std::vector<std::pair<size_t, size_t>> matches;
  size_t pos = 0;
  while (pos < input.size()) {
    size_t end;
    if (MatchAt(0, input, pos, &end) && end > pos) {
      matches.emplace_back(pos, end);
      pos = end;
    } else {
      ++pos;
    }
  }
  return matches;
}

}  // namespace tuneledger::train
