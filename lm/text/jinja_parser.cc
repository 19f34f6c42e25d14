#include "lm/text/jinja_parser.h"

#include <cctype>
#include <cstdlib>
#include <set>
#include <utility>

#include "lm/text/jinja_builtins.h"
#include "lm/text/unicode.h"
#include "lm/trainer_error.h"

namespace tuneledger::train::jinja {
namespace {

struct Token {
  enum class Type {
    kData,
    kVariableBegin,
    kVariableEnd,
    kBlockBegin,
    kBlockEnd,
    kName,
    kString,
    kInteger,
    kFloat,
    kOperator,
    kEof,
  };
  Type type = Type::kEof;
  std::string text;  // data, name, operator; a string literal's decoded value
  Value value;       // integer / float literal
  int line = 1;
};

[[noreturn]] void SyntaxError(const std::string& where, int line, const std::string& what) {
  throw TrainError(where + ": syntax error at line " + std::to_string(line) + ": " + what);
}

[[noreturn]] void UnsupportedConstruct(const std::string& where, int line,
                                       const std::string& construct) {
  throw TrainError(where + ": unsupported Jinja construct '" + construct + "' at line " +
                   std::to_string(line));
}

bool StartsWith(const std::string& text, size_t pos, const char* prefix) {
  return text.compare(pos, std::char_traits<char>::length(prefix), prefix) == 0;
}

// Length of the Python whitespace (`\s`) run at `pos`.
size_t SpaceRun(const std::string& text, size_t pos) {
  size_t end = pos;
  while (end < text.size()) {
    size_t next = end;
    if (!IsPythonSpace(DecodeUtf8(text, &next))) break;
    end = next;
  }
  return end - pos;
}

// Python's str.rstrip().
std::string RStrip(const std::string& text) {
  size_t keep = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    if (!IsPythonSpace(DecodeUtf8(text, &pos))) keep = pos;
  }
  return text.substr(0, keep);
}

bool AllSpace(const std::string& text, size_t pos) {
  return pos < text.size() && SpaceRun(text, pos) == text.size() - pos;
}

void AppendPythonEscape(char32_t cp, std::string* out) {
  char buffer[16];
  if (cp <= 0xff) {
    std::snprintf(buffer, sizeof(buffer), "\\x%02x", static_cast<unsigned>(cp));
  } else if (cp <= 0xffff) {
    std::snprintf(buffer, sizeof(buffer), "\\u%04x", static_cast<unsigned>(cp));
  } else {
    std::snprintf(buffer, sizeof(buffer), "\\U%08x", static_cast<unsigned>(cp));
  }
  *out += buffer;
}

class Lexer {
 public:
  Lexer(const std::string& source, const std::string& where) : where_(where) {
    // jinja2: split on \r\n, \r, \n; join with \n; drop one trailing newline.
    for (size_t i = 0; i < source.size(); ++i) {
      if (source[i] == '\r') {
        source_ += '\n';
        if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
      } else {
        source_ += source[i];
      }
    }
    if (!source_.empty() && source_.back() == '\n') source_.pop_back();
  }

  std::vector<Token> Run() {
    size_t pos = 0;
    bool line_starting = true;
    while (pos < source_.size()) {
      const size_t start = FindTagStart(pos);
      if (start == std::string::npos) {
        Emit(Token::Type::kData, source_.substr(pos), pos);
        break;
      }
      const char kind = source_[start + 1];
      const char sign =
          start + 2 < source_.size() && (source_[start + 2] == '-' || source_[start + 2] == '+')
              ? source_[start + 2]
              : '\0';
      std::string text = source_.substr(pos, start - pos);
      if (sign == '-') {
        text = RStrip(text);
      } else if (sign != '+' && kind != '{') {
        // lstrip_blocks: only whitespace between the line start and a block or comment tag.
        const size_t line_start = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
        if ((line_start > 0 || line_starting) && AllSpace(text, line_start)) {
          text.resize(line_start);
        }
      }
      if (!text.empty()) Emit(Token::Type::kData, text, pos);
      size_t inner = start + 2 + (sign != '\0' ? 1 : 0);
      if (kind == '#') {
        pos = SkipComment(inner, start);
      } else {
        pos = LexTag(kind == '%', inner, start);
      }
      line_starting = pos > 0 && source_[pos - 1] == '\n';
    }
    Token eof;
    eof.line = LineAt(source_.size());
    tokens_.push_back(eof);
    return std::move(tokens_);
  }

 private:
  size_t FindTagStart(size_t pos) const {
    while (true) {
      const size_t brace = source_.find('{', pos);
      if (brace == std::string::npos || brace + 1 >= source_.size()) return std::string::npos;
      const char next = source_[brace + 1];
      if (next == '{' || next == '%' || next == '#') return brace;
      pos = brace + 1;
    }
  }

  int LineAt(size_t pos) {
    while (line_pos_ < pos && line_pos_ < source_.size()) {
      if (source_[line_pos_] == '\n') ++line_;
      ++line_pos_;
    }
    return line_;
  }

  void Emit(Token::Type type, std::string text, size_t pos) {
    Token token;
    token.type = type;
    token.text = std::move(text);
    token.line = LineAt(pos);
    tokens_.push_back(std::move(token));
  }

  // The comment rule: (.*?)(\+#}|-#}\s*|#}\n?).
  size_t SkipComment(size_t inner, size_t start) {
    const size_t close = source_.find("#}", inner);
    if (close == std::string::npos) SyntaxError(where_, LineAt(start), "missing end of comment");
    if (close > inner && source_[close - 1] == '-') {
      return close + 2 + SpaceRun(source_, close + 2);
    }
    if (close > inner && source_[close - 1] == '+') return close + 2;
    return close + 2 + (close + 2 < source_.size() && source_[close + 2] == '\n' ? 1 : 0);
  }

  // The end of a {% %} or {{ }} tag at `pos`, or npos: "+%}", "-%}\s*", "%}\n?" (trim_blocks);
  // "-}}\s*", "}}".
  size_t MatchTagEnd(bool block, size_t pos) const {
    if (block) {
      if (StartsWith(source_, pos, "+%}")) return pos + 3;
      if (StartsWith(source_, pos, "-%}")) return pos + 3 + SpaceRun(source_, pos + 3);
      if (StartsWith(source_, pos, "%}")) {
        return pos + 2 + (pos + 2 < source_.size() && source_[pos + 2] == '\n' ? 1 : 0);
      }
      return std::string::npos;
    }
    if (StartsWith(source_, pos, "-}}")) return pos + 3 + SpaceRun(source_, pos + 3);
    if (StartsWith(source_, pos, "}}")) return pos + 2;
    return std::string::npos;
  }

  size_t LexTag(bool block, size_t pos, size_t start) {
    if (block) {
      // {% raw %} is lexed specially by jinja2; this subset does not have it.
      size_t p = pos + SpaceRun(source_, pos);
      if (StartsWith(source_, p, "raw") &&
          (p + 3 >= source_.size() || !(std::isalnum(source_[p + 3]) || source_[p + 3] == '_'))) {
        UnsupportedConstruct(where_, LineAt(start), "raw");
      }
    }
    Emit(block ? Token::Type::kBlockBegin : Token::Type::kVariableBegin, "", start);
    std::vector<char> balance;
    while (true) {
      if (pos >= source_.size()) {
        SyntaxError(where_, LineAt(start),
                    block ? "unexpected end of template inside {% %}"
                          : "unexpected end of template inside {{ }}");
      }
      if (balance.empty()) {
        const size_t end = MatchTagEnd(block, pos);
        if (end != std::string::npos) {
          Emit(block ? Token::Type::kBlockEnd : Token::Type::kVariableEnd, "", pos);
          return end;
        }
      }
      if (const size_t spaces = SpaceRun(source_, pos); spaces > 0) {
        pos += spaces;
      } else if (size_t end = MatchFloat(pos); end != 0) {
        std::string digits;
        for (size_t i = pos; i < end; ++i) {
          if (source_[i] != '_') digits += source_[i];
        }
        Token token;
        token.type = Token::Type::kFloat;
        token.value = Value::Float(std::strtod(digits.c_str(), nullptr));
        token.line = LineAt(pos);
        tokens_.push_back(std::move(token));
        pos = end;
      } else if (end = MatchInteger(pos); end != 0) {
        pos = EmitInteger(pos, end);
      } else if (std::isalpha(static_cast<unsigned char>(source_[pos])) || source_[pos] == '_') {
        size_t end_name = pos;
        while (end_name < source_.size() &&
               (std::isalnum(static_cast<unsigned char>(source_[end_name])) ||
                source_[end_name] == '_')) {
          ++end_name;
        }
        Emit(Token::Type::kName, source_.substr(pos, end_name - pos), pos);
        pos = end_name;
      } else if (source_[pos] == '\'' || source_[pos] == '"') {
        pos = LexString(pos);
      } else {
        pos = LexOperator(pos, &balance);
      }
    }
  }

  size_t Digits(size_t pos) const {  // (\d+_)*\d+ ; returns the end or pos
    size_t end = pos;
    while (end < source_.size() && std::isdigit(static_cast<unsigned char>(source_[end]))) {
      ++end;
      if (end + 1 < source_.size() && source_[end] == '_' &&
          std::isdigit(static_cast<unsigned char>(source_[end + 1]))) {
        ++end;
      }
    }
    return end;
  }

  // float_re: (?<!\.)(\d+_)*\d+((\.(\d+_)*\d+)?e[+\-]?(\d+_)*\d+|\.(\d+_)*\d+); 0 = no match.
  size_t MatchFloat(size_t pos) const {
    if (pos > 0 && source_[pos - 1] == '.') return 0;
    const size_t int_end = Digits(pos);
    if (int_end == pos) return 0;
    size_t p = int_end;
    bool fraction = false;
    if (p < source_.size() && source_[p] == '.') {
      const size_t frac_end = Digits(p + 1);
      if (frac_end > p + 1) {
        p = frac_end;
        fraction = true;
      }
    }
    if (p < source_.size() && (source_[p] == 'e' || source_[p] == 'E')) {
      size_t q = p + 1;
      if (q < source_.size() && (source_[q] == '+' || source_[q] == '-')) ++q;
      const size_t exp_end = Digits(q);
      if (exp_end > q) return exp_end;
    }
    return fraction ? p : 0;
  }

  // integer_re: 0b.., 0o.., 0x.., [1-9](_?\d)*, 0(_?0)*; 0 = no match.
  size_t MatchInteger(size_t pos) const {
    const char c = source_[pos];
    if (!std::isdigit(static_cast<unsigned char>(c))) return 0;
    if (c == '0' && pos + 2 < source_.size()) {
      const char base = static_cast<char>(std::tolower(source_[pos + 1]));
      auto valid = [&](char d) {
        d = static_cast<char>(std::tolower(d));
        return base == 'b'   ? (d == '0' || d == '1')
               : base == 'o' ? (d >= '0' && d <= '7')
                             : std::isxdigit(static_cast<unsigned char>(d)) != 0;
      };
      if (base == 'b' || base == 'o' || base == 'x') {
        size_t p = pos + 2;
        size_t end = pos;
        while (p < source_.size()) {
          if (source_[p] == '_' && p + 1 < source_.size() && valid(source_[p + 1])) {
            p += 2;
          } else if (valid(source_[p])) {
            ++p;
          } else {
            break;
          }
          end = p;
        }
        if (end != pos) return end;
      }
    }
    if (c == '0') {
      size_t p = pos + 1;
      while (p < source_.size()) {
        if (source_[p] == '0') {
          ++p;
        } else if (source_[p] == '_' && p + 1 < source_.size() && source_[p + 1] == '0') {
          p += 2;
        } else {
          break;
        }
      }
      return p;
    }
    return Digits(pos);
  }

  size_t EmitInteger(size_t pos, size_t end) {
    std::string digits;
    for (size_t i = pos; i < end; ++i) {
      if (source_[i] != '_') digits += source_[i];
    }
    int base = 10;
    std::string body = digits;
    if (digits.size() > 2 && digits[0] == '0' && std::isalpha(digits[1])) {
      const char b = static_cast<char>(std::tolower(digits[1]));
      base = b == 'b' ? 2 : b == 'o' ? 8 : 16;
      body = digits.substr(2);
    }
    errno = 0;
    const long long value = std::strtoll(body.c_str(), nullptr, base);
    if (errno == ERANGE) {
      UnsupportedConstruct(where_, LineAt(pos), "integer literal beyond 64 bits");
    }
    Token token;
    token.type = Token::Type::kInteger;
    token.value = Value::Int(value);
    token.line = LineAt(pos);
    tokens_.push_back(std::move(token));
    return end;
  }

  // A quoted literal, decoded as Python's unicode-escape codec decodes it (after jinja2's
  // encode("ascii", "backslashreplace"), which is why a backslash before a non-ASCII character
  // yields that character's \x / \u escape spelled out).
  size_t LexString(size_t pos) {
    const char quote = source_[pos];
    const int line = LineAt(pos);
    std::string out;
    size_t p = pos + 1;
    auto hex = [&](size_t count) -> char32_t {
      if (p + count > source_.size()) SyntaxError(where_, line, "truncated \\x/\\u escape");
      uint32_t value = 0;
      for (size_t i = 0; i < count; ++i) {
        const char d = source_[p + i];
        if (!std::isxdigit(static_cast<unsigned char>(d))) {
          SyntaxError(where_, line, "truncated \\x/\\u escape");
        }
        value = value * 16 +
                static_cast<uint32_t>(std::isdigit(d) ? d - '0' : std::tolower(d) - 'a' + 10);
      }
      p += count;
      return value;
    };
    auto append_code_point = [&](char32_t cp) {
      if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        UnsupportedConstruct(where_, line, "string escape of a surrogate or beyond U+10FFFF");
      }
      AppendUtf8(cp, &out);
    };
    while (true) {
      if (p >= source_.size()) SyntaxError(where_, line, "unterminated string literal");
      const char c = source_[p];
      if (c == quote) break;
      if (c != '\\') {
        out += c;
        ++p;
        continue;
      }
      if (p + 1 >= source_.size()) SyntaxError(where_, line, "unterminated string literal");
      const char e = source_[p + 1];
      p += 2;
      switch (e) {
        case '\n':
          break;
        case '\\':
        case '\'':
        case '"':
          out += e;
          break;
        case 'a':
          out += '\a';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'v':
          out += '\v';
          break;
        case 'x':
          append_code_point(hex(2));
          break;
        case 'u':
          append_code_point(hex(4));
          break;
        case 'U':
          append_code_point(hex(8));
          break;
        case 'N':
          UnsupportedConstruct(where_, line, "\\N{...} string escape");
        default:
          if (e >= '0' && e <= '7') {
            char32_t value = static_cast<char32_t>(e - '0');
            for (int i = 0; i < 2 && p < source_.size() && source_[p] >= '0' && source_[p] <= '7';
                 ++i) {
              value = value * 8 + static_cast<char32_t>(source_[p++] - '0');
            }
            append_code_point(value);
          } else if (static_cast<unsigned char>(e) >= 0x80) {
            size_t q = p - 1;
            AppendPythonEscape(DecodeUtf8(source_, &q), &out);
            p = q;
          } else {
            out += '\\';
            out += e;
          }
      }
    }
    Token token;
    token.type = Token::Type::kString;
    token.text = std::move(out);
    token.line = line;
    tokens_.push_back(std::move(token));
    return p + 1;
  }

  size_t LexOperator(size_t pos, std::vector<char>* balance) {
    static const char* const kTwo[] = {"//", "**", "==", "!=", ">=", "<="};
    for (const char* op : kTwo) {
      if (StartsWith(source_, pos, op)) {
        Emit(Token::Type::kOperator, op, pos);
        return pos + 2;
      }
    }
    const char c = source_[pos];
    if (std::string("+-/*%~[](){}><=.:|,;").find(c) == std::string::npos) {
      SyntaxError(where_, LineAt(pos), std::string("unexpected character '") + c + "'");
    }
    if (c == '(' || c == '[' || c == '{') {
      balance->push_back(c == '(' ? ')' : c == '[' ? ']' : '}');
    } else if (c == ')' || c == ']' || c == '}') {
      if (balance->empty() || balance->back() != c) {
        SyntaxError(where_, LineAt(pos), std::string("unexpected '") + c + "'");
      }
      balance->pop_back();
    }
    Emit(Token::Type::kOperator, std::string(1, c), pos);
    return pos + 1;
  }

  std::string source_;
  const std::string& where_;
  std::vector<Token> tokens_;
  size_t line_pos_ = 0;
  int line_ = 1;
};

class Parser {
 public:
  Parser(std::vector<Token> tokens, const std::string& where)
      : tokens_(std::move(tokens)), where_(where) {}

  Body ParseAll() {
    Body body = Subparse({});
    if (Current().type != Token::Type::kEof) {
      SyntaxError(where_, Current().line, "unexpected '" + Current().text + "'");
    }
    return body;
  }

 private:
  const Token& Current() const { return tokens_[pos_]; }
  const Token& Look() const { return tokens_[std::min(pos_ + 1, tokens_.size() - 1)]; }
  const Token& Next() {
    const Token& token = tokens_[pos_];
    if (pos_ + 1 < tokens_.size()) ++pos_;
    return token;
  }
  bool IsName(const Token& token, const char* name) const {
    return token.type == Token::Type::kName && token.text == name;
  }
  bool IsOp(const Token& token, const char* op) const {
    return token.type == Token::Type::kOperator && token.text == op;
  }
  bool SkipName(const char* name) {
    if (!IsName(Current(), name)) return false;
    Next();
    return true;
  }
  bool SkipOp(const char* op) {
    if (!IsOp(Current(), op)) return false;
    Next();
    return true;
  }
  std::string Describe(const Token& token) const {
    switch (token.type) {
      case Token::Type::kEof:
        return "end of template";
      case Token::Type::kBlockEnd:
        return "end of statement block";
      case Token::Type::kVariableEnd:
        return "end of print statement";
      case Token::Type::kData:
        return "template data";
      default:
        return "'" + token.text + "'";
    }
  }
  void ExpectOp(const char* op) {
    if (!SkipOp(op)) {
      SyntaxError(where_, Current().line,
                  std::string("expected '") + op + "', got " + Describe(Current()));
    }
  }
  void ExpectName(const char* name) {
    if (!SkipName(name)) {
      SyntaxError(where_, Current().line,
                  std::string("expected '") + name + "', got " + Describe(Current()));
    }
  }
  std::string ExpectIdentifier() {
    if (Current().type != Token::Type::kName) {
      SyntaxError(where_, Current().line, "expected a name, got " + Describe(Current()));
    }
    return Next().text;
  }
  void ExpectBlockEnd() {
    if (Current().type != Token::Type::kBlockEnd) {
      SyntaxError(where_, Current().line,
                  "expected end of statement block, got " + Describe(Current()));
    }
    Next();
  }

  // --- statements -------------------------------------------------------------------------

  Body Subparse(const std::set<std::string>& end_tags) {
    Body body;
    while (Current().type != Token::Type::kEof) {
      const Token& token = Current();
      if (token.type == Token::Type::kData) {
        auto node = std::make_unique<Node>();
        node->kind = Node::Kind::kText;
        node->line = token.line;
        node->text = token.text;
        body.push_back(std::move(node));
        Next();
      } else if (token.type == Token::Type::kVariableBegin) {
        Next();
        auto node = std::make_unique<Node>();
        node->kind = Node::Kind::kOutput;
        node->line = token.line;
        node->expr = ParseTuple(/*with_condexpr=*/true, {});
        if (Current().type != Token::Type::kVariableEnd) {
          SyntaxError(where_, Current().line,
                      "expected end of print statement, got " + Describe(Current()));
        }
        Next();
        body.push_back(std::move(node));
      } else if (token.type == Token::Type::kBlockBegin) {
        Next();
        if (Current().type == Token::Type::kName && end_tags.count(Current().text)) return body;
        if (std::unique_ptr<Node> node = ParseStatement()) body.push_back(std::move(node));
        ExpectBlockEnd();
      } else {
        SyntaxError(where_, token.line, "unexpected " + Describe(token));
      }
    }
    return body;
  }

  // jinja2's parse_statements: [:] block_end body, stopping at (not consuming) an end tag.
  Body ParseStatements(const std::set<std::string>& end_tags, bool drop_needle) {
    SkipOp(":");
    ExpectBlockEnd();
    const int line = Current().line;
    Body body = Subparse(end_tags);
    if (Current().type == Token::Type::kEof) {
      std::string names;
      for (const std::string& tag : end_tags) names += (names.empty() ? "'" : " or '") + tag + "'";
      SyntaxError(where_, line, "unexpected end of template, expected " + names);
    }
    if (drop_needle) Next();
    return body;
  }

  std::unique_ptr<Node> ParseStatement() {
    const Token& token = Current();
    if (token.type != Token::Type::kName) SyntaxError(where_, token.line, "tag name expected");
    const std::string tag = token.text;
    if (tag == "if") return ParseIf();
    if (tag == "for") return ParseFor();
    if (tag == "set") return ParseSet();
    if (tag == "macro") return ParseMacro();
    if (tag == "break" || tag == "continue") {
      auto node = std::make_unique<Node>();
      node->kind = tag == "break" ? Node::Kind::kBreak : Node::Kind::kContinue;
      node->line = Next().line;
      return node;
    }
    if (tag == "generation") {
      // transformers' AssistantTracker: {% generation %} body {% endgeneration %} renders its
      // body; the positions it records are not needed here.
      auto node = std::make_unique<Node>();
      node->kind = Node::Kind::kIf;
      node->line = Next().line;
      auto always = std::make_unique<Expr>();
      always->value = Value::Bool(true);
      node->branches.emplace_back(std::move(always),
                                  ParseStatements({"endgeneration"}, /*drop_needle=*/true));
      return node;
    }
    static const std::set<std::string> kEndTags = {"elif",   "else",     "endif",        "endfor",
                                                   "endset", "endmacro", "endgeneration"};
    if (kEndTags.count(tag)) SyntaxError(where_, token.line, "unexpected '" + tag + "'");
    UnsupportedConstruct(where_, token.line, tag);
  }

  std::unique_ptr<Node> ParseIf() {
    auto node = std::make_unique<Node>();
    node->kind = Node::Kind::kIf;
    node->line = Next().line;
    while (true) {
      ExprPtr test = ParseTuple(/*with_condexpr=*/false, {});
      Body body = ParseStatements({"elif", "else", "endif"}, /*drop_needle=*/false);
      node->branches.emplace_back(std::move(test), std::move(body));
      const Token& end = Next();
      if (end.text == "elif") continue;
      if (end.text == "else") {
        node->else_body = ParseStatements({"endif"}, /*drop_needle=*/true);
      }
      break;
    }
    return node;
  }

  // Names between `for` and `in`, or a set target: name, or a, b (tuple).
  std::vector<std::string> ParseTargets(const char* end_name) {
    std::vector<std::string> names;
    const bool parenthesized = SkipOp("(");
    while (true) {
      names.push_back(ExpectIdentifier());
      if (!SkipOp(",")) break;
      if ((end_name != nullptr && IsName(Current(), end_name)) || IsOp(Current(), ")") ||
          IsOp(Current(), "=")) {
        break;
      }
    }
    if (parenthesized) ExpectOp(")");
    return names;
  }

  std::unique_ptr<Node> ParseFor() {
    auto node = std::make_unique<Node>();
    node->kind = Node::Kind::kFor;
    node->line = Next().line;
    node->targets = ParseTargets("in");
    ExpectName("in");
    node->expr = ParseTuple(/*with_condexpr=*/false, {"recursive"});
    if (SkipName("if")) node->filter = ParseExpression(/*with_condexpr=*/true);
    if (IsName(Current(), "recursive")) {
      UnsupportedConstruct(where_, Current().line, "recursive for loop");
    }
    node->body = ParseStatements({"endfor", "else"}, /*drop_needle=*/false);
    if (Next().text == "else") node->else_body = ParseStatements({"endfor"}, true);
    return node;
  }

  std::unique_ptr<Node> ParseSet() {
    auto node = std::make_unique<Node>();
    node->line = Next().line;
    if (Current().type == Token::Type::kName && IsOp(Look(), ".")) {
      node->targets.push_back(Next().text);
      Next();
      node->attribute = ExpectIdentifier();
    } else {
      node->targets = ParseTargets(nullptr);
    }
    if (SkipOp("=")) {
      node->kind = Node::Kind::kSet;
      node->expr = ParseTuple(/*with_condexpr=*/true, {});
      return node;
    }
    if (IsOp(Current(), "|")) UnsupportedConstruct(where_, Current().line, "filtered set block");
    if (!node->attribute.empty() || node->targets.size() != 1) {
      SyntaxError(where_, node->line, "a set block assigns one name");
    }
    node->kind = Node::Kind::kSetBlock;
    node->body = ParseStatements({"endset"}, /*drop_needle=*/true);
    return node;
  }

  std::unique_ptr<Node> ParseMacro() {
    auto node = std::make_unique<Node>();
    node->kind = Node::Kind::kMacro;
    node->line = Next().line;
    node->name = ExpectIdentifier();
    ExpectOp("(");
    while (!IsOp(Current(), ")")) {
      if (!node->params.empty()) ExpectOp(",");
      if (IsOp(Current(), ")")) break;
      std::string name = ExpectIdentifier();
      ExprPtr fallback;
      if (SkipOp("=")) {
        fallback = ParseExpression(/*with_condexpr=*/true);
      } else if (!node->params.empty() && node->params.back().second) {
        SyntaxError(where_, node->line, "non-default argument follows default argument");
      }
      node->params.emplace_back(std::move(name), std::move(fallback));
    }
    Next();
    node->body = ParseStatements({"endmacro"}, /*drop_needle=*/true);
    return node;
  }

  // --- expressions (jinja2's precedence, loosest first) --------------------------------------

  ExprPtr Make(Expr::Kind kind, int line) {
    auto expr = std::make_unique<Expr>();
    expr->kind = kind;
    expr->line = line;
    return expr;
  }

  bool IsTupleEnd(const std::set<std::string>& extra_end) const {
    const Token& token = Current();
    if (token.type == Token::Type::kVariableEnd || token.type == Token::Type::kBlockEnd ||
        token.type == Token::Type::kEof || IsOp(token, ")")) {
      return true;
    }
    return token.type == Token::Type::kName && extra_end.count(token.text) > 0;
  }

  ExprPtr ParseTuple(bool with_condexpr, const std::set<std::string>& extra_end,
                     bool explicit_parentheses = false) {
    const int line = Current().line;
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) ExpectOp(",");
      if (IsTupleEnd(extra_end)) break;
      items.push_back(ParseExpression(with_condexpr));
      if (IsOp(Current(), ",")) {
        is_tuple = true;
      } else {
        break;
      }
    }
    if (!is_tuple) {
      if (!items.empty()) return std::move(items[0]);
      if (!explicit_parentheses) {
        SyntaxError(where_, line, "expected an expression, got " + Describe(Current()));
      }
    }
    ExprPtr tuple = Make(Expr::Kind::kTuple, line);
    tuple->args = std::move(items);
    return tuple;
  }

  ExprPtr ParseExpression(bool with_condexpr) {
    return with_condexpr ? ParseCondExpr() : ParseOr();
  }

  ExprPtr ParseCondExpr() {
    ExprPtr value = ParseOr();
    while (IsName(Current(), "if")) {
      const int line = Next().line;
      ExprPtr test = ParseOr();
      ExprPtr otherwise;
      if (SkipName("else")) otherwise = ParseCondExpr();
      ExprPtr cond = Make(Expr::Kind::kCondExpr, line);
      cond->args.push_back(std::move(test));
      cond->args.push_back(std::move(value));
      cond->args.push_back(std::move(otherwise));
      value = std::move(cond);
    }
    return value;
  }

  ExprPtr Binary(Expr::Kind kind, ExprPtr left, ExprPtr right, int line,
                 const std::string& op = "") {
    ExprPtr expr = Make(kind, line);
    expr->name = op;
    expr->args.push_back(std::move(left));
    expr->args.push_back(std::move(right));
    return expr;
  }

  ExprPtr ParseOr() {
    ExprPtr left = ParseAnd();
    while (IsName(Current(), "or")) {
      const int line = Next().line;
      left = Binary(Expr::Kind::kOr, std::move(left), ParseAnd(), line);
    }
    return left;
  }

  ExprPtr ParseAnd() {
    ExprPtr left = ParseNot();
    while (IsName(Current(), "and")) {
      const int line = Next().line;
      left = Binary(Expr::Kind::kAnd, std::move(left), ParseNot(), line);
    }
    return left;
  }

  ExprPtr ParseNot() {
    if (IsName(Current(), "not")) {
      ExprPtr expr = Make(Expr::Kind::kNot, Next().line);
      expr->args.push_back(ParseNot());
      return expr;
    }
    return ParseCompare();
  }

  ExprPtr ParseCompare() {
    const int line = Current().line;
    ExprPtr first = ParseMath1();
    ExprPtr compare;
    while (true) {
      std::string op;
      const Token& token = Current();
      if (token.type == Token::Type::kOperator &&
          (token.text == "==" || token.text == "!=" || token.text == "<" || token.text == "<=" ||
           token.text == ">" || token.text == ">=")) {
        op = token.text;
        Next();
      } else if (IsName(token, "in")) {
        op = "in";
        Next();
      } else if (IsName(token, "not") && IsName(Look(), "in")) {
        op = "notin";
        Next();
        Next();
      } else {
        break;
      }
      if (!compare) {
        compare = Make(Expr::Kind::kCompare, line);
        compare->args.push_back(std::move(first));
      }
      compare->ops.push_back(op);
      compare->args.push_back(ParseMath1());
    }
    return compare ? std::move(compare) : std::move(first);
  }

  ExprPtr ParseMath1() {
    ExprPtr left = ParseConcat();
    while (IsOp(Current(), "+") || IsOp(Current(), "-")) {
      const Token& op = Next();
      left = Binary(Expr::Kind::kBinary, std::move(left), ParseConcat(), op.line, op.text);
    }
    return left;
  }

  ExprPtr ParseConcat() {
    ExprPtr left = ParseMath2();
    while (IsOp(Current(), "~")) {
      const int line = Next().line;
      left = Binary(Expr::Kind::kBinary, std::move(left), ParseMath2(), line, "~");
    }
    return left;
  }

  ExprPtr ParseMath2() {
    ExprPtr left = ParsePow();
    while (IsOp(Current(), "*") || IsOp(Current(), "/") || IsOp(Current(), "//") ||
           IsOp(Current(), "%")) {
      const Token& op = Next();
      left = Binary(Expr::Kind::kBinary, std::move(left), ParsePow(), op.line, op.text);
    }
    return left;
  }

  ExprPtr ParsePow() {
    ExprPtr left = ParseUnary(/*with_filter=*/true);
    while (IsOp(Current(), "**")) {
      const int line = Next().line;
      left = Binary(Expr::Kind::kBinary, std::move(left), ParseUnary(true), line, "**");
    }
    return left;
  }

  ExprPtr ParseUnary(bool with_filter) {
    ExprPtr node;
    if (IsOp(Current(), "-") || IsOp(Current(), "+")) {
      const Token& op = Next();
      node = Make(op.text == "-" ? Expr::Kind::kNegate : Expr::Kind::kPlus, op.line);
      node->args.push_back(ParseUnary(/*with_filter=*/false));
    } else {
      node = ParsePrimary();
    }
    node = ParsePostfix(std::move(node));
    if (with_filter) node = ParseFilterExpr(std::move(node));
    return node;
  }

  ExprPtr ParsePrimary() {
    const Token& token = Current();
    const int line = token.line;
    switch (token.type) {
      case Token::Type::kName: {
        Next();
        ExprPtr expr = Make(Expr::Kind::kLiteral, line);
        if (token.text == "true" || token.text == "True") {
          expr->value = Value::Bool(true);
        } else if (token.text == "false" || token.text == "False") {
          expr->value = Value::Bool(false);
        } else if (token.text == "none" || token.text == "None") {
          expr->value = Value::None();
        } else {
          expr->kind = Expr::Kind::kName;
          expr->name = token.text;
        }
        return expr;
      }
      case Token::Type::kString: {
        std::string text;
        while (Current().type == Token::Type::kString) text += Next().text;
        ExprPtr expr = Make(Expr::Kind::kLiteral, line);
        expr->value = Value::String(std::move(text));
        return expr;
      }
      case Token::Type::kInteger:
      case Token::Type::kFloat: {
        ExprPtr expr = Make(Expr::Kind::kLiteral, line);
        expr->value = Next().value;
        return expr;
      }
      case Token::Type::kOperator:
        if (token.text == "(") {
          Next();
          ExprPtr expr = ParseTuple(true, {}, /*explicit_parentheses=*/true);
          ExpectOp(")");
          return expr;
        }
        if (token.text == "[") return ParseList();
        if (token.text == "{") return ParseDict();
        [[fallthrough]];
      default:
        SyntaxError(where_, line, "unexpected " + Describe(token));
    }
  }

  ExprPtr ParseList() {
    ExprPtr list = Make(Expr::Kind::kList, Next().line);
    while (!IsOp(Current(), "]")) {
      if (!list->args.empty()) ExpectOp(",");
      if (IsOp(Current(), "]")) break;
      list->args.push_back(ParseExpression(true));
    }
    ExpectOp("]");
    return list;
  }

  ExprPtr ParseDict() {
    ExprPtr dict = Make(Expr::Kind::kDict, Next().line);
    while (!IsOp(Current(), "}")) {
      if (!dict->args.empty()) ExpectOp(",");
      if (IsOp(Current(), "}")) break;
      dict->args.push_back(ParseExpression(true));
      ExpectOp(":");
      dict->args.push_back(ParseExpression(true));
    }
    ExpectOp("}");
    return dict;
  }

  ExprPtr ParsePostfix(ExprPtr node) {
    while (true) {
      if (IsOp(Current(), ".") || IsOp(Current(), "[")) {
        node = ParseSubscript(std::move(node));
      } else if (IsOp(Current(), "(")) {
        node = ParseCall(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr ParseFilterExpr(ExprPtr node) {
    while (true) {
      if (IsOp(Current(), "|")) {
        node = ParseFilter(std::move(node));
      } else if (IsName(Current(), "is")) {
        node = ParseTest(std::move(node));
      } else if (IsOp(Current(), "(")) {
        node = ParseCall(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr ParseSubscript(ExprPtr node) {
    const Token& token = Next();
    if (token.text == ".") {
      const Token& attribute = Next();
      if (attribute.type == Token::Type::kName) {
        ExprPtr expr = Make(Expr::Kind::kGetAttr, token.line);
        expr->name = attribute.text;
        expr->args.push_back(std::move(node));
        return expr;
      }
      if (attribute.type != Token::Type::kInteger) {
        SyntaxError(where_, attribute.line, "expected name or number after '.'");
      }
      ExprPtr expr = Make(Expr::Kind::kGetItem, token.line);
      expr->args.push_back(std::move(node));
      ExprPtr key = Make(Expr::Kind::kLiteral, attribute.line);
      key->value = attribute.value;
      expr->args.push_back(std::move(key));
      return expr;
    }
    // [key] or [start:stop:step]; jinja2's multi-dimensional [a, b] is not in the subset.
    ExprPtr key;
    if (!IsOp(Current(), ":")) key = ParseExpression(true);
    bool slice = false;
    ExprPtr bounds[3];
    if (SkipOp(":")) {
      slice = true;
      bounds[0] = std::move(key);
      if (!IsOp(Current(), ":") && !IsOp(Current(), "]")) bounds[1] = ParseExpression(true);
      if (SkipOp(":") && !IsOp(Current(), "]")) bounds[2] = ParseExpression(true);
    }
    if (IsOp(Current(), ","))
      UnsupportedConstruct(where_, token.line, "multi-dimensional subscript");
    ExpectOp("]");
    if (slice) {
      ExprPtr expr = Make(Expr::Kind::kSlice, token.line);
      expr->args.push_back(std::move(node));
      for (ExprPtr& bound : bounds) expr->args.push_back(std::move(bound));
      return expr;
    }
    if (!key) SyntaxError(where_, token.line, "expected subscript expression");
    ExprPtr expr = Make(Expr::Kind::kGetItem, token.line);
    expr->args.push_back(std::move(node));
    expr->args.push_back(std::move(key));
    return expr;
  }

  // ( args, name=value, ... ) into expr->args (after whatever is there) and expr->kwargs.
  void ParseCallArgs(Expr* expr) {
    const int line = Current().line;
    ExpectOp("(");
    bool require_comma = false;
    while (!IsOp(Current(), ")")) {
      if (require_comma) {
        ExpectOp(",");
        if (IsOp(Current(), ")")) break;
      }
      if (IsOp(Current(), "*") || IsOp(Current(), "**")) {
        UnsupportedConstruct(where_, line, Current().text + "args in a call");
      }
      if (Current().type == Token::Type::kName && IsOp(Look(), "=")) {
        std::string key = Next().text;
        Next();
        expr->kwargs.emplace_back(std::move(key), ParseExpression(true));
      } else {
        if (!expr->kwargs.empty()) {
          SyntaxError(where_, line, "positional argument follows keyword argument");
        }
        expr->args.push_back(ParseExpression(true));
      }
      require_comma = true;
    }
    Next();
  }

  ExprPtr ParseCall(ExprPtr callee) {
    ExprPtr expr = Make(Expr::Kind::kCall, Current().line);
    expr->args.push_back(std::move(callee));
    ParseCallArgs(expr.get());
    return expr;
  }

  std::string DottedName() {
    std::string name = ExpectIdentifier();
    while (SkipOp(".")) {
      name += '.';
      name += ExpectIdentifier();
    }
    return name;
  }

  ExprPtr ParseFilter(ExprPtr node) {
    while (SkipOp("|")) {
      const int line = Current().line;
      const std::string name = DottedName();
      if (!IsSupportedFilter(name)) UnsupportedConstruct(where_, line, "filter " + name);
      ExprPtr expr = Make(Expr::Kind::kFilter, line);
      expr->name = name;
      expr->args.push_back(std::move(node));
      if (IsOp(Current(), "(")) ParseCallArgs(expr.get());
      node = std::move(expr);
    }
    return node;
  }

  ExprPtr ParseTest(ExprPtr node) {
    const int line = Next().line;  // 'is'
    const bool negated = SkipName("not");
    const std::string name = DottedName();
    if (!IsSupportedTest(name)) UnsupportedConstruct(where_, line, "test " + name);
    ExprPtr expr = Make(Expr::Kind::kTest, line);
    expr->name = name;
    expr->negated = negated;
    expr->args.push_back(std::move(node));
    const Token& token = Current();
    if (IsOp(token, "(")) {
      ParseCallArgs(expr.get());
    } else if ((token.type == Token::Type::kName || token.type == Token::Type::kString ||
                token.type == Token::Type::kInteger || token.type == Token::Type::kFloat ||
                IsOp(token, "[") || IsOp(token, "{")) &&
               !IsName(token, "else") && !IsName(token, "or") && !IsName(token, "and")) {
      if (IsName(token, "is")) SyntaxError(where_, line, "you cannot chain multiple tests with is");
      expr->args.push_back(ParsePostfix(ParsePrimary()));
    }
    return expr;
  }

  std::vector<Token> tokens_;
  size_t pos_ = 0;
  const std::string& where_;
};

}  // namespace

Body ParseTemplate(const std::string& source, const std::string& where) {
  if (!IsValidUtf8(source)) throw TrainError(where + ": the template is not valid UTF-8");
  Lexer lexer(source, where);
  Parser parser(lexer.Run(), where);
  return parser.ParseAll();
}

}  // namespace tuneledger::train::jinja
