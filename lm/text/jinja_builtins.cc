#include "lm/text/jinja_builtins.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <set>
#include <string_view>

#include "lm/text/unicode.h"

namespace tuneledger::train::jinja {
namespace {

using Items = Value::Items;

const std::set<std::string>& Filters() {
  static const std::set<std::string> kFilters = {
      "abs",        "capitalize", "count",  "d",          "default", "first",   "float",
      "indent",     "int",        "items",  "join",       "last",    "length",  "list",
      "lower",      "map",        "reject", "rejectattr", "replace", "reverse", "select",
      "selectattr", "string",     "title",  "tojson",     "trim",    "upper"};
  return kFilters;
}

const std::set<std::string>& Tests() {
  static const std::set<std::string> kTests = {
      "boolean",  "callable", "defined",  "divisibleby", "eq",          "equalto", "even",
      "false",    "float",    "ge",       "gt",          "greaterthan", "in",      "integer",
      "iterable", "le",       "lessthan", "lower",       "lt",          "mapping", "ne",
      "none",     "number",   "odd",      "sequence",    "string",      "true",    "undefined",
      "upper",    "==",       "!=",       "<",           "<=",          ">",       ">="};
  return kTests;
}

// Python's str methods (any of them is an attribute of a str; only some are implemented).
bool IsStrMethodName(const std::string& name) {
  static const std::set<std::string> kNames = {
      "capitalize",   "casefold",    "center",    "count",      "encode",       "endswith",
      "expandtabs",   "find",        "format",    "format_map", "index",        "isalnum",
      "isalpha",      "isascii",     "isdecimal", "isdigit",    "isidentifier", "islower",
      "isnumeric",    "isprintable", "isspace",   "istitle",    "isupper",      "join",
      "ljust",        "lower",       "lstrip",    "maketrans",  "partition",    "removeprefix",
      "removesuffix", "replace",     "rfind",     "rindex",     "rjust",        "rpartition",
      "rsplit",       "rstrip",      "split",     "splitlines", "startswith",   "strip",
      "swapcase",     "title",       "translate", "upper",      "zfill"};
  return kNames.count(name) > 0;
}

bool IsDictMethodName(const std::string& name) {
  static const std::set<std::string> kNames = {"clear",      "copy",   "fromkeys", "get",
                                               "items",      "keys",   "pop",      "popitem",
                                               "setdefault", "update", "values"};
  return kNames.count(name) > 0;
}

bool IsListMethodName(const std::string& name) {
  static const std::set<std::string> kNames = {"append", "clear",   "copy",   "count",
                                               "extend", "index",   "insert", "pop",
                                               "remove", "reverse", "sort"};
  return kNames.count(name) > 0;
}

[[noreturn]] void Undefined(const Value& value) {
  throw Error("'" + (value.name().empty() ? std::string("value") : value.name()) +
              "' is undefined");
}

// Binds call arguments to parameter names, as a Python signature with defaults would.
class Params {
 public:
  Params(const CallArgs& args, std::vector<std::string> names, const std::string& what)
      : values_(names.size(), nullptr) {
    if (args.positional.size() > names.size()) {
      throw Error(what + "() takes at most " + std::to_string(names.size()) + " arguments, got " +
                  std::to_string(args.positional.size()));
    }
    for (size_t i = 0; i < args.positional.size(); ++i) values_[i] = &args.positional[i];
    for (const auto& [key, value] : args.keyword) {
      const auto it = std::find(names.begin(), names.end(), key);
      if (it == names.end())
        throw Error(what + "() got an unexpected keyword argument '" + key + "'");
      const size_t index = static_cast<size_t>(it - names.begin());
      if (values_[index] != nullptr) throw Error(what + "() got multiple values for '" + key + "'");
      values_[index] = &value;
    }
  }
  bool has(size_t i) const { return values_[i] != nullptr; }
  const Value& Get(size_t i, const Value& fallback) const {
    return values_[i] != nullptr ? *values_[i] : fallback;
  }

 private:
  std::vector<const Value*> values_;
};

const Value& NoneValue() {
  static const Value kNone = Value::None();
  return kNone;
}

void NoArgs(const CallArgs& args, const std::string& what) { Params(args, {}, what); }

int64_t RequireInt(const Value& value, const std::string& what) {
  if (value.type() == Value::Type::kInt || value.type() == Value::Type::kBool) {
    return value.int_value();
  }
  throw Error(what + ": an integer is required, got " + value.TypeName());
}

const std::string& RequireString(const Value& value, const std::string& what) {
  if (value.is_undefined()) Undefined(value);
  if (!value.is_string()) throw Error(what + ": must be str, not " + value.TypeName());
  return value.string_value();
}

// --- Python string semantics ---------------------------------------------------------------

std::vector<char32_t> Decode(const std::string& text) {
  std::vector<char32_t> out;
  size_t pos = 0;
  while (pos < text.size()) out.push_back(DecodeUtf8(text, &pos));
  return out;
}

std::string Encode(const std::vector<char32_t>& cps, size_t begin, size_t end) {
  std::string out;
  for (size_t i = begin; i < end; ++i) AppendUtf8(cps[i], &out);
  return out;
}

bool IsCased(char32_t cp) {
  const Category c = GetCategory(cp);
  return c == Category::kLu || c == Category::kLl || c == Category::kLt;
}

std::string Lower(const std::string& text) {
  bool ascii = true;
  for (unsigned char c : text) ascii = ascii && c < 0x80;
  if (ascii) {
    std::string out = text;
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
  }
  // Python lowercases a capital sigma at the end of a word to final sigma; the per-character
  // table does not.
  if (text.find("\xce\xa3") != std::string::npos) {
    throw Unsupported("lower() of a text holding a capital sigma");
  }
  return ToLowercase(text);
}

// Uppercase of one code point: ASCII, or unchanged for a character that is not a lowercase or
// titlecase letter; anything else would need Unicode's case tables.
void AppendUpper(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(std::toupper(static_cast<int>(cp))));
    return;
  }
  const Category c = GetCategory(cp);
  if (c == Category::kLl || c == Category::kLt) {
    throw Unsupported("uppercasing a non-ASCII letter");
  }
  AppendUtf8(cp, out);
}

std::string Upper(const std::string& text) {
  std::string out;
  for (char32_t cp : Decode(text)) AppendUpper(cp, &out);
  return out;
}

std::string Capitalize(const std::string& text) {
  const std::vector<char32_t> cps = Decode(text);
  if (cps.empty()) return "";
  std::string out;
  AppendUpper(cps[0], &out);
  return out + Lower(Encode(cps, 1, cps.size()));
}

// Python's str.title(): a cased character after a cased one is lowered, others uppered.
std::string PyTitle(const std::string& text) {
  std::string out;
  bool previous_cased = false;
  for (char32_t cp : Decode(text)) {
    std::string one;
    AppendUtf8(cp, &one);
    if (previous_cased) {
      out += Lower(one);
    } else {
      AppendUpper(cp, &out);
    }
    previous_cased = IsCased(cp);
  }
  return out;
}

// jinja2's do_title: split on runs of [-\s({\[<], then item[0].upper() + item[1:].lower().
std::string JinjaTitle(const std::string& text) {
  const std::vector<char32_t> cps = Decode(text);
  auto is_separator = [](char32_t cp) {
    return cp == U'-' || cp == U'(' || cp == U'{' || cp == U'[' || cp == U'<' || IsPythonSpace(cp);
  };
  std::string out;
  size_t i = 0;
  while (i < cps.size()) {
    size_t j = i;
    const bool separator = is_separator(cps[i]);
    while (j < cps.size() && is_separator(cps[j]) == separator) ++j;
    std::string first;
    AppendUpper(cps[i], &first);
    out += first + Lower(Encode(cps, i + 1, j));
    i = j;
  }
  return out;
}

std::string Strip(const std::string& text, const Value& chars, bool left, bool right) {
  const std::vector<char32_t> cps = Decode(text);
  std::vector<char32_t> set;
  const bool whitespace = chars.is_none() || chars.is_undefined();
  if (!whitespace) set = Decode(RequireString(chars, "strip"));
  auto strip = [&](char32_t cp) {
    return whitespace ? IsPythonSpace(cp) : std::find(set.begin(), set.end(), cp) != set.end();
  };
  size_t begin = 0;
  size_t end = cps.size();
  if (left) {
    while (begin < end && strip(cps[begin])) ++begin;
  }
  if (right) {
    while (end > begin && strip(cps[end - 1])) --end;
  }
  return Encode(cps, begin, end);
}

Value StringList(std::vector<std::string> parts) {
  Items items;
  for (std::string& part : parts) items.push_back(Value::String(std::move(part)));
  return Value::List(std::move(items));
}

// Python's str.split / str.rsplit.
std::vector<std::string> Split(const std::string& text, const Value& sep, int64_t maxsplit,
                               bool from_right) {
  std::vector<std::string> parts;
  if (sep.is_none()) {
    const std::vector<char32_t> cps = Decode(text);
    std::vector<std::pair<size_t, size_t>> words;
    size_t i = 0;
    while (i < cps.size()) {
      while (i < cps.size() && IsPythonSpace(cps[i])) ++i;
      if (i == cps.size()) break;
      size_t j = i;
      while (j < cps.size() && !IsPythonSpace(cps[j])) ++j;
      words.emplace_back(i, j);
      i = j;
    }
    // Once maxsplit cuts are made, the rest is kept whole, whitespace on its far side included.
    if (maxsplit < 0 || static_cast<size_t>(maxsplit) >= words.size()) {
      for (const auto& [b, e] : words) parts.push_back(Encode(cps, b, e));
      return parts;
    }
    const size_t keep = static_cast<size_t>(maxsplit);
    if (!from_right) {
      for (size_t w = 0; w < keep; ++w)
        parts.push_back(Encode(cps, words[w].first, words[w].second));
      parts.push_back(Encode(cps, words[keep].first, cps.size()));
    } else {
      const size_t first_whole = words.size() - keep;
      parts.push_back(Encode(cps, 0, words[first_whole - 1].second));
      for (size_t w = first_whole; w < words.size(); ++w) {
        parts.push_back(Encode(cps, words[w].first, words[w].second));
      }
    }
    return parts;
  }
  const std::string& separator = RequireString(sep, "split");
  if (separator.empty()) throw Error("empty separator");
  std::vector<size_t> cuts;  // byte offsets where a separator starts
  for (size_t pos = text.find(separator); pos != std::string::npos;
       pos = text.find(separator, pos + separator.size())) {
    cuts.push_back(pos);
  }
  if (maxsplit >= 0 && cuts.size() > static_cast<size_t>(maxsplit)) {
    if (from_right) {
      // rsplit cuts from the right, non-overlapping: recompute scanning backwards.
      cuts.clear();
      size_t end = text.size();
      while (cuts.size() < static_cast<size_t>(maxsplit) && end >= separator.size()) {
        const size_t pos = text.rfind(separator, end - separator.size());
        if (pos == std::string::npos) break;
        cuts.insert(cuts.begin(), pos);
        end = pos;
      }
    } else {
      cuts.resize(static_cast<size_t>(maxsplit));
    }
  }
  size_t begin = 0;
  for (size_t cut : cuts) {
    parts.push_back(text.substr(begin, cut - begin));
    begin = cut + separator.size();
  }
  parts.push_back(text.substr(begin));
  return parts;
}

bool IsLineBreak(char32_t cp) {
  return cp == U'\n' || cp == U'\r' || cp == 0x0b || cp == 0x0c || cp == 0x1c || cp == 0x1d ||
         cp == 0x1e || cp == 0x85 || cp == 0x2028 || cp == 0x2029;
}

std::vector<std::string> SplitLines(const std::string& text, bool keepends) {
  const std::vector<char32_t> cps = Decode(text);
  std::vector<std::string> lines;
  size_t begin = 0;
  size_t i = 0;
  while (i < cps.size()) {
    if (!IsLineBreak(cps[i])) {
      ++i;
      continue;
    }
    size_t end = i + 1;
    if (cps[i] == U'\r' && end < cps.size() && cps[end] == U'\n') ++end;
    lines.push_back(Encode(cps, begin, keepends ? end : i));
    begin = i = end;
  }
  if (begin < cps.size()) lines.push_back(Encode(cps, begin, cps.size()));
  return lines;
}

std::string Replace(const std::string& text, const std::string& old, const std::string& with,
                    int64_t count) {
  std::string out;
  if (old.empty()) {
    const std::vector<std::string> cps = CodePoints(text);
    int64_t done = 0;
    for (const std::string& cp : cps) {
      if (count < 0 || done < count) {
        out += with;
        ++done;
      }
      out += cp;
    }
    if (count < 0 || done < count) out += with;
    return out;
  }
  size_t begin = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    const size_t pos = text.find(old, begin);
    if (pos == std::string::npos) break;
    out.append(text, begin, pos - begin);
    out += with;
    begin = pos + old.size();
    ++done;
  }
  out.append(text, begin, std::string::npos);
  return out;
}

// True when `text` starts (ends) with `affix`, a str or a tuple/list of them.
bool HasAffix(const std::string& text, const Value& affix, bool at_end, const std::string& what) {
  if (affix.is_list()) {
    for (const Value& item : affix.items()) {
      if (HasAffix(text, item, at_end, what)) return true;
    }
    return false;
  }
  const std::string& a = RequireString(affix, what);
  if (a.size() > text.size()) return false;
  return at_end ? text.compare(text.size() - a.size(), a.size(), a) == 0
                : text.compare(0, a.size(), a) == 0;
}

template <typename Predicate>
bool AllCodePoints(const std::string& text, Predicate predicate) {
  const std::vector<char32_t> cps = Decode(text);
  if (cps.empty()) return false;
  return std::all_of(cps.begin(), cps.end(), predicate);
}

bool IsLetter(char32_t cp) { return (CategoryBit(GetCategory(cp)) & kLetterMask) != 0; }

// islower / isupper: some cased character, and every cased one in that case.
bool CaseIs(const std::string& text, Category want) {
  bool any = false;
  for (char32_t cp : Decode(text)) {
    const Category c = GetCategory(cp);
    if (c == Category::kLu || c == Category::kLl || c == Category::kLt) {
      if (c != want) return false;
      any = true;
    }
  }
  return any;
}

int64_t CodePointIndex(const std::string& text, size_t byte_pos) {
  return static_cast<int64_t>(CodePointCount(text.substr(0, byte_pos)));
}

Value CallStrMethod(const std::string& text, const std::string& name, const CallArgs& args) {
  const std::string what = "str." + name;
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    Params p(args, {"chars"}, what);
    return Value::String(Strip(text, p.Get(0, NoneValue()), name != "rstrip", name != "lstrip"));
  }
  if (name == "split" || name == "rsplit") {
    Params p(args, {"sep", "maxsplit"}, what);
    const int64_t maxsplit = p.has(1) ? RequireInt(p.Get(1, NoneValue()), what) : -1;
    return StringList(Split(text, p.Get(0, NoneValue()), maxsplit, name == "rsplit"));
  }
  if (name == "splitlines") {
    Params p(args, {"keepends"}, what);
    return StringList(SplitLines(text, Truthy(p.Get(0, Value::Bool(false)))));
  }
  if (name == "startswith" || name == "endswith") {
    if (args.positional.size() != 1 || !args.keyword.empty()) {
      throw Unsupported(what + " with start/end arguments");
    }
    return Value::Bool(HasAffix(text, args.positional[0], name == "endswith", what));
  }
  if (name == "upper" || name == "lower" || name == "title" || name == "capitalize") {
    NoArgs(args, what);
    return Value::String(name == "upper"   ? Upper(text)
                         : name == "lower" ? Lower(text)
                         : name == "title" ? PyTitle(text)
                                           : Capitalize(text));
  }
  if (name == "replace") {
    Params p(args, {"old", "new", "count"}, what);
    if (!p.has(0) || !p.has(1)) throw Error(what + "() needs old and new");
    const int64_t count = p.has(2) ? RequireInt(p.Get(2, NoneValue()), what) : -1;
    return Value::String(Replace(text, RequireString(p.Get(0, NoneValue()), what),
                                 RequireString(p.Get(1, NoneValue()), what), count));
  }
  if (name == "find" || name == "rfind" || name == "count") {
    if (args.positional.size() != 1 || !args.keyword.empty()) {
      throw Unsupported(what + " with start/end arguments");
    }
    const std::string& sub = RequireString(args.positional[0], what);
    if (name == "count") {
      if (sub.empty()) return Value::Int(static_cast<int64_t>(CodePointCount(text)) + 1);
      int64_t count = 0;
      for (size_t pos = text.find(sub); pos != std::string::npos;
           pos = text.find(sub, pos + sub.size())) {
        ++count;
      }
      return Value::Int(count);
    }
    const size_t pos = name == "find" ? text.find(sub) : text.rfind(sub);
    return Value::Int(pos == std::string::npos ? -1 : CodePointIndex(text, pos));
  }
  if (name == "join") {
    Params p(args, {"iterable"}, what);
    if (!p.has(0)) throw Error(what + "() takes exactly one argument");
    std::string out;
    size_t index = 0;
    for (const Value& item : Iterate(p.Get(0, NoneValue()))) {
      if (!item.is_string()) {
        throw Error("sequence item " + std::to_string(index) + ": expected str instance, " +
                    item.TypeName() + " found");
      }
      if (index++ > 0) out += text;
      out += item.string_value();
    }
    return Value::String(out);
  }
  if (name == "isspace") {
    NoArgs(args, what);
    return Value::Bool(AllCodePoints(text, IsPythonSpace));
  }
  if (name == "isalpha") {
    NoArgs(args, what);
    return Value::Bool(AllCodePoints(text, IsLetter));
  }
  if (name == "isdigit") {
    NoArgs(args, what);
    return Value::Bool(
        AllCodePoints(text, [](char32_t cp) { return GetCategory(cp) == Category::kNd; }));
  }
  if (name == "isalnum") {
    NoArgs(args, what);
    return Value::Bool(
        AllCodePoints(text, [](char32_t cp) { return IsLetter(cp) || IsNumeric(cp); }));
  }
  if (name == "islower" || name == "isupper") {
    NoArgs(args, what);
    return Value::Bool(CaseIs(text, name == "islower" ? Category::kLl : Category::kLu));
  }
  throw Unsupported(what);
}

Value CallDictMethod(const Value& dict, const std::string& name, const CallArgs& args) {
  const std::string what = "dict." + name;
  if (name == "get") {
    Params p(args, {"key", "default"}, what);
    if (!p.has(0)) throw Error(what + "() takes at least 1 argument");
    const Value* found = dict.Find(p.Get(0, NoneValue()));
    return found != nullptr ? *found : p.Get(1, NoneValue());
  }
  NoArgs(args, what);
  Items items;
  for (const auto& [key, value] : dict.entries()) {
    if (name == "keys") {
      items.push_back(key);
    } else if (name == "values") {
      items.push_back(value);
    } else if (name == "items") {
      items.push_back(Value::List({key, value}, /*tuple=*/true));
    } else {
      // pop, update, ...: the immutable sandbox refuses them, and so does this subset.
      throw Unsupported(what);
    }
  }
  return Value::List(std::move(items));
}

Value BoundMethod(const Value& object, const std::string& name) {
  const std::string full = object.TypeName() + "." + name;
  return Value::Callable(full, [object, name, full](const CallArgs& args) -> Value {
    if (object.is_string()) return CallStrMethod(object.string_value(), name, args);
    if (object.is_dict()) return CallDictMethod(object, name, args);
    throw Unsupported(full);
  });
}

size_t Length(const Value& value) {
  switch (value.type()) {
    case Value::Type::kUndefined:
      return 0;
    case Value::Type::kString:
      return CodePointCount(value.string_value());
    case Value::Type::kList:
      return value.items().size();
    case Value::Type::kDict:
      return value.entries().size();
    default:
      throw Error("object of type '" + value.TypeName() + "' has no len()");
  }
}

// jinja2's make_attrgetter: "a.b" looks up item a, then item b (getitem, then getattr).
Value AttributePath(const Value& item, const std::string& path) {
  Value current = item;
  size_t begin = 0;
  while (true) {
    const size_t dot = path.find('.', begin);
    const std::string part = path.substr(begin, dot == std::string::npos ? dot : dot - begin);
    const bool numeric = !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit);
    current =
        GetItem(current, numeric ? Value::Int(std::atoll(part.c_str())) : Value::String(part));
    if (dot == std::string::npos) return current;
    begin = dot + 1;
  }
}

// select / reject / selectattr / rejectattr: args are [attribute,] [test, test args...].
Value SelectOrReject(const Value& sequence, const CallArgs& args, bool by_attribute, bool select,
                     const std::string& what) {
  if (!args.keyword.empty()) throw Unsupported(what + " with keyword arguments");
  size_t next = 0;
  std::string attribute;
  if (by_attribute) {
    if (args.positional.empty()) throw Error(what + ": missing attribute");
    attribute = RequireString(args.positional[next++], what);
  }
  std::string test;
  CallArgs test_args;
  if (next < args.positional.size()) {
    test = RequireString(args.positional[next++], what);
    if (!IsSupportedTest(test)) throw Unsupported("test " + test);
    test_args.positional.assign(args.positional.begin() + static_cast<std::ptrdiff_t>(next),
                                args.positional.end());
  }
  Items out;
  for (const Value& item : Iterate(sequence)) {
    const Value subject = by_attribute ? AttributePath(item, attribute) : item;
    const bool passes = test.empty() ? Truthy(subject) : ApplyTest(test, subject, test_args);
    if (passes == select) out.push_back(item);
  }
  return Value::List(std::move(out));
}

Value Map(const Value& sequence, const CallArgs& args) {
  Items out;
  if (args.positional.empty()) {
    Params p(args, {"attribute", "default"}, "map");
    if (!p.has(0)) throw Error("map: needs a filter name or attribute=");
    const std::string& attribute = RequireString(p.Get(0, NoneValue()), "map");
    for (const Value& item : Iterate(sequence)) {
      Value value = AttributePath(item, attribute);
      if (value.is_undefined() && p.has(1)) value = p.Get(1, NoneValue());
      out.push_back(std::move(value));
    }
    return Value::List(std::move(out));
  }
  const std::string& filter = RequireString(args.positional[0], "map");
  if (!IsSupportedFilter(filter)) throw Unsupported("filter " + filter);
  CallArgs filter_args;
  filter_args.positional.assign(args.positional.begin() + 1, args.positional.end());
  filter_args.keyword = args.keyword;
  for (const Value& item : Iterate(sequence)) out.push_back(ApplyFilter(filter, item, filter_args));
  return Value::List(std::move(out));
}

// jinja2's do_indent.
std::string Indent(const std::string& text, const Value& width, bool first, bool blank) {
  std::string indention;
  if (width.is_string()) {
    indention = width.string_value();
  } else {
    indention.assign(static_cast<size_t>(std::max<int64_t>(0, RequireInt(width, "indent"))), ' ');
  }
  const std::vector<std::string> lines = SplitLines(text + "\n", false);
  std::string out;
  if (blank) {
    for (size_t i = 0; i < lines.size(); ++i) out += (i > 0 ? "\n" + indention : "") + lines[i];
  } else {
    out = lines.empty() ? "" : lines[0];
    for (size_t i = 1; i < lines.size(); ++i) {
      out += "\n" + (lines[i].empty() ? lines[i] : indention + lines[i]);
    }
  }
  return first ? indention + out : out;
}

// Python's int(str): optional sign and whitespace, digits with single underscores.
std::optional<int64_t> ParseInt(const std::string& text, int64_t base) {
  const std::string trimmed = Strip(text, NoneValue(), true, true);
  std::string digits;
  for (size_t i = 0; i < trimmed.size(); ++i) {
    if (trimmed[i] == '_' && i > 0 && i + 1 < trimmed.size() && trimmed[i - 1] != '_') continue;
    digits += trimmed[i];
  }
  if (digits.empty() || base < 2 || base > 36) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  const long long value = std::strtoll(digits.c_str(), &end, static_cast<int>(base));
  if (errno != 0 || *end != '\0' || std::isspace(static_cast<unsigned char>(digits[0])) ||
      (digits.size() > 1 && (digits[1] == '+' || digits[1] == '-'))) {
    return std::nullopt;
  }
  return value;
}

std::optional<double> ParseFloat(const std::string& text) {
  const std::string trimmed = Strip(text, NoneValue(), true, true);
  if (trimmed.empty()) return std::nullopt;
  char* end = nullptr;
  const double value = std::strtod(trimmed.c_str(), &end);
  if (*end != '\0' || trimmed.find_first_of("xXpP") != std::string::npos) return std::nullopt;
  return value;
}

Value IntFilter(const Value& value, const CallArgs& args) {
  Params p(args, {"default", "base"}, "int");
  const Value fallback = p.Get(0, Value::Int(0));
  const int64_t base = p.has(1) ? RequireInt(p.Get(1, NoneValue()), "int") : 10;
  if (value.is_string()) {
    if (auto parsed = ParseInt(value.string_value(), base)) return Value::Int(*parsed);
    if (auto parsed = ParseFloat(value.string_value())) {
      if (std::isfinite(*parsed)) return Value::Int(static_cast<int64_t>(*parsed));
    }
    return fallback;
  }
  if (value.type() == Value::Type::kFloat) {
    if (!std::isfinite(value.float_value())) return fallback;
    return Value::Int(static_cast<int64_t>(value.float_value()));
  }
  if (value.is_number()) return Value::Int(value.int_value());
  return fallback;
}

Value FloatFilter(const Value& value, const CallArgs& args) {
  Params p(args, {"default"}, "float");
  const Value fallback = p.Get(0, Value::Float(0.0));
  if (value.is_string()) {
    if (auto parsed = ParseFloat(value.string_value())) return Value::Float(*parsed);
    return fallback;
  }
  if (value.is_number()) return Value::Float(value.float_value());
  return fallback;
}

// Python ints do not overflow; past 64 bits this subset stops.
int64_t CheckedInt(bool overflow, const int64_t& value) {
  if (overflow) throw Unsupported("integer arithmetic beyond 64 bits");
  return value;
}

Value Repeat(const Value& sequence, int64_t times) {
  if (sequence.is_string()) {
    std::string out;
    for (int64_t i = 0; i < times; ++i) out += sequence.string_value();
    return Value::String(out);
  }
  Items out;
  for (int64_t i = 0; i < times; ++i) {
    out.insert(out.end(), sequence.items().begin(), sequence.items().end());
  }
  return Value::List(std::move(out), sequence.is_tuple());
}

bool CompareTest(const std::string& name, const Value& a, const Value& b) {
  if (name == "eq" || name == "equalto" || name == "==") return Equal(a, b);
  if (name == "ne" || name == "!=") return !Equal(a, b);
  const bool swap =
      name == "gt" || name == "greaterthan" || name == ">" || name == "le" || name == "<=";
  const std::optional<bool> less = swap ? Less(b, a) : Less(a, b);
  if (!less) {
    throw Error("'" + name + "' not supported between instances of '" + a.TypeName() + "' and '" +
                b.TypeName() + "'");
  }
  const bool strict = name == "lt" || name == "lessthan" || name == "<" || name == "gt" ||
                      name == "greaterthan" || name == ">";
  return strict ? *less : !*less;
}

}  // namespace

bool IsSupportedFilter(const std::string& name) { return Filters().count(name) > 0; }
bool IsSupportedTest(const std::string& name) { return Tests().count(name) > 0; }

Items Iterate(const Value& value) {
  switch (value.type()) {
    case Value::Type::kUndefined:
      return {};
    case Value::Type::kList:
      return value.items();
    case Value::Type::kDict: {
      Items keys;
      for (const auto& entry : value.entries()) keys.push_back(entry.first);
      return keys;
    }
    case Value::Type::kString: {
      Items chars;
      for (std::string& cp : CodePoints(value.string_value())) {
        chars.push_back(Value::String(std::move(cp)));
      }
      return chars;
    }
    default:
      throw Error("'" + value.TypeName() + "' object is not iterable");
  }
}

Value GetAttribute(const Value& object, const std::string& name) {
  switch (object.type()) {
    case Value::Type::kUndefined:
      Undefined(object);
    case Value::Type::kDict:
      if (IsDictMethodName(name)) return BoundMethod(object, name);
      if (const Value* found = object.Find(name)) return *found;
      break;
    case Value::Type::kNamespace:
      if (const Value* found = object.Find(name)) return *found;
      break;
    case Value::Type::kString:
      if (IsStrMethodName(name)) return BoundMethod(object, name);
      break;
    case Value::Type::kList:
      if (IsListMethodName(name)) return BoundMethod(object, name);
      break;
    default:
      break;
  }
  return Value::Undefined("'" + object.TypeName() + " object' has no attribute '" + name + "'");
}

Value GetItem(const Value& object, const Value& key) {
  if (object.is_undefined()) Undefined(object);
  if (object.is_dict() || object.type() == Value::Type::kNamespace) {
    if (const Value* found = object.Find(key)) return *found;
  } else if ((object.is_list() || object.is_string()) &&
             (key.type() == Value::Type::kInt || key.type() == Value::Type::kBool)) {
    const std::vector<std::string> cps =
        object.is_string() ? CodePoints(object.string_value()) : std::vector<std::string>();
    const int64_t size =
        static_cast<int64_t>(object.is_string() ? cps.size() : object.items().size());
    int64_t index = key.int_value();
    if (index < 0) index += size;
    if (index >= 0 && index < size) {
      return object.is_string() ? Value::String(cps[static_cast<size_t>(index)])
                                : object.items()[static_cast<size_t>(index)];
    }
    return Value::Undefined("index " + std::to_string(key.int_value()) + " out of range");
  }
  // A key may come from the data, and errors must not quote the data: the hint of a missing
  // item names the key's type, never its text.
  const std::string no_item =
      "'" + object.TypeName() + " object' has no item of type '" + key.TypeName() + "'";
  if (key.is_string() && !object.is_dict()) {
    Value found = GetAttribute(object, key.string_value());
    return found.is_undefined() ? Value::Undefined(no_item) : found;
  }
  if (key.is_string() && IsDictMethodName(key.string_value())) {
    return BoundMethod(object, key.string_value());
  }
  return Value::Undefined(no_item);
}

Value Slice(const Value& object, const Value* start_value, const Value* stop_value,
            const Value* step_value) {
  if (object.is_undefined()) Undefined(object);
  if (!object.is_list() && !object.is_string()) {
    throw Error("'" + object.TypeName() + "' object is not subscriptable");
  }
  auto bound = [](const Value* value) -> std::optional<int64_t> {
    if (value == nullptr || value->is_none()) return std::nullopt;
    return RequireInt(*value, "slice indices");
  };
  const std::vector<std::string> cps =
      object.is_string() ? CodePoints(object.string_value()) : std::vector<std::string>();
  const int64_t length =
      static_cast<int64_t>(object.is_string() ? cps.size() : object.items().size());
  const int64_t step = bound(step_value).value_or(1);
  if (step == 0) throw Error("slice step cannot be zero");
  // CPython's PySlice_AdjustIndices.
  auto adjust = [&](std::optional<int64_t> index, int64_t fallback) {
    if (!index) return fallback;
    int64_t i = *index;
    if (i < 0) {
      i += length;
      if (i < 0) i = step < 0 ? -1 : 0;
    } else if (i >= length) {
      i = step < 0 ? length - 1 : length;
    }
    return i;
  };
  const int64_t start = adjust(bound(start_value), step < 0 ? length - 1 : 0);
  const int64_t stop = adjust(bound(stop_value), step < 0 ? -1 : length);
  std::string text;
  Items items;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
    if (object.is_string()) {
      text += cps[static_cast<size_t>(i)];
    } else {
      items.push_back(object.items()[static_cast<size_t>(i)]);
    }
  }
  return object.is_string() ? Value::String(text)
                            : Value::List(std::move(items), object.is_tuple());
}

bool Contains(const Value& container, const Value& item) {
  switch (container.type()) {
    case Value::Type::kUndefined:
      return false;
    case Value::Type::kString:
      if (!item.is_string()) {
        throw Error("'in <string>' requires string as left operand, not " + item.TypeName());
      }
      return container.string_value().find(item.string_value()) != std::string::npos;
    case Value::Type::kList:
      return std::any_of(container.items().begin(), container.items().end(),
                         [&](const Value& x) { return Equal(x, item); });
    case Value::Type::kDict:
      return container.Find(item) != nullptr;
    default:
      throw Error("argument of type '" + container.TypeName() + "' is not iterable");
  }
}

Value BinaryOp(const std::string& op, const Value& a, const Value& b) {
  if (op == "~") return Value::String(ToStr(a) + ToStr(b));
  if (a.is_undefined()) Undefined(a);
  if (b.is_undefined()) Undefined(b);
  const bool numbers = a.is_number() && b.is_number();
  const bool floats =
      numbers && (a.type() == Value::Type::kFloat || b.type() == Value::Type::kFloat);
  int64_t result = 0;
  if (op == "+") {
    if (numbers) {
      if (floats) return Value::Float(a.float_value() + b.float_value());
      {
        const bool overflow = __builtin_add_overflow(a.int_value(), b.int_value(), &result);
        return Value::Int(CheckedInt(overflow, result));
      }
    }
    if (a.is_string() && b.is_string()) return Value::String(a.string_value() + b.string_value());
    if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
      Items items = a.items();
      items.insert(items.end(), b.items().begin(), b.items().end());
      return Value::List(std::move(items), a.is_tuple());
    }
  } else if (op == "-") {
    if (numbers) {
      if (floats) return Value::Float(a.float_value() - b.float_value());
      {
        const bool overflow = __builtin_sub_overflow(a.int_value(), b.int_value(), &result);
        return Value::Int(CheckedInt(overflow, result));
      }
    }
  } else if (op == "*") {
    if (numbers) {
      if (floats) return Value::Float(a.float_value() * b.float_value());
      {
        const bool overflow = __builtin_mul_overflow(a.int_value(), b.int_value(), &result);
        return Value::Int(CheckedInt(overflow, result));
      }
    }
    const bool a_int = a.type() == Value::Type::kInt || a.type() == Value::Type::kBool;
    const bool b_int = b.type() == Value::Type::kInt || b.type() == Value::Type::kBool;
    if ((a.is_string() || a.is_list()) && b_int) return Repeat(a, b.int_value());
    if ((b.is_string() || b.is_list()) && a_int) return Repeat(b, a.int_value());
  } else if (op == "/") {
    if (numbers) {
      if (b.float_value() == 0) throw Error("division by zero");
      return Value::Float(a.float_value() / b.float_value());
    }
  } else if (op == "//" || op == "%") {
    if (numbers) {
      if (b.float_value() == 0) throw Error("integer division or modulo by zero");
      if (floats) {
        const double x = a.float_value();
        const double y = b.float_value();
        // CPython's float_divmod.
        double mod = std::fmod(x, y);
        double div = (x - mod) / y;
        if (mod != 0 && ((y < 0) != (mod < 0))) {
          mod += y;
          div -= 1.0;
        }
        if (op == "%") return Value::Float(mod != 0 ? mod : std::copysign(0.0, y));
        if (div == 0) return Value::Float(std::copysign(0.0, x / y));
        double floordiv = std::floor(div);
        if (div - floordiv > 0.5) floordiv += 1.0;
        return Value::Float(floordiv);
      }
      const int64_t x = a.int_value();
      const int64_t y = b.int_value();
      if (x == INT64_MIN && y == -1) throw Unsupported("integer arithmetic beyond 64 bits");
      int64_t q = x / y;
      int64_t r = x % y;
      if (r != 0 && ((r < 0) != (y < 0))) {
        --q;
        r += y;
      }
      return Value::Int(op == "//" ? q : r);
    }
    if (op == "%" && a.is_string()) throw Unsupported("printf-style '%' string formatting");
  } else if (op == "**") {
    if (numbers) {
      if (!floats && b.int_value() >= 0) {
        int64_t value = 1;
        for (int64_t i = 0; i < b.int_value(); ++i) {
          const bool overflow = __builtin_mul_overflow(value, a.int_value(), &value);
          CheckedInt(overflow, value);
        }
        return Value::Int(value);
      }
      return Value::Float(std::pow(a.float_value(), b.float_value()));
    }
  }
  throw Error("unsupported operand type(s) for " + op + ": '" + a.TypeName() + "' and '" +
              b.TypeName() + "'");
}

std::string ToJson(const Value& value, const CallArgs& args) {
  Params p(args, {"ensure_ascii", "indent", "separators", "sort_keys"}, "tojson");
  DumpOptions options;
  options.ensure_ascii = Truthy(p.Get(0, Value::Bool(false)));
  const Value& indent = p.Get(1, NoneValue());
  if (indent.is_string()) {
    options.indent = indent.string_value();
  } else if (!indent.is_none()) {
    options.indent = std::string(
        static_cast<size_t>(std::max<int64_t>(0, RequireInt(indent, "tojson indent"))), ' ');
  }
  if (options.indent) options.item_separator = ",";
  const Value& separators = p.Get(2, NoneValue());
  if (!separators.is_none()) {
    if (!separators.is_list() || separators.items().size() != 2) {
      throw Error("tojson: separators must be an (item_separator, key_separator) pair");
    }
    options.item_separator = RequireString(separators.items()[0], "tojson separators");
    options.key_separator = RequireString(separators.items()[1], "tojson separators");
  }
  options.sort_keys = Truthy(p.Get(3, Value::Bool(false)));
  return DumpJson(value, options);
}

Value ApplyFilter(const std::string& name, const Value& operand, const CallArgs& args) {
  if (name == "default" || name == "d") {
    Params p(args, {"default_value", "boolean"}, name);
    const bool use_default =
        operand.is_undefined() || (Truthy(p.Get(1, Value::Bool(false))) && !Truthy(operand));
    return use_default ? p.Get(0, Value::String("")) : operand;
  }
  if (name == "length" || name == "count") {
    NoArgs(args, name);
    return Value::Int(static_cast<int64_t>(Length(operand)));
  }
  if (name == "string") {
    NoArgs(args, name);
    return Value::String(ToStr(operand));
  }
  if (name == "trim") {
    Params p(args, {"chars"}, name);
    return Value::String(Strip(ToStr(operand), p.Get(0, NoneValue()), true, true));
  }
  if (name == "upper" || name == "lower" || name == "capitalize" || name == "title") {
    NoArgs(args, name);
    const std::string text = ToStr(operand);
    return Value::String(name == "upper"   ? Upper(text)
                         : name == "lower" ? Lower(text)
                         : name == "title" ? JinjaTitle(text)
                                           : Capitalize(text));
  }
  if (name == "replace") {
    Params p(args, {"old", "new", "count"}, name);
    if (!p.has(0) || !p.has(1)) throw Error("replace: needs old and new");
    const int64_t count =
        p.has(2) && !p.Get(2, NoneValue()).is_none() ? RequireInt(p.Get(2, NoneValue()), name) : -1;
    return Value::String(
        Replace(ToStr(operand), ToStr(p.Get(0, NoneValue())), ToStr(p.Get(1, NoneValue())), count));
  }
  if (name == "join") {
    Params p(args, {"d", "attribute"}, name);
    const std::string separator = ToStr(p.Get(0, Value::String("")));
    const Value& attribute = p.Get(1, NoneValue());
    std::string out;
    bool first = true;
    for (const Value& item : Iterate(operand)) {
      if (!first) out += separator;
      first = false;
      out += ToStr(attribute.is_none() ? item : AttributePath(item, ToStr(attribute)));
    }
    return Value::String(out);
  }
  if (name == "tojson") return Value::String(ToJson(operand, args));
  if (name == "first" || name == "last") {
    NoArgs(args, name);
    if (name == "last" && operand.is_undefined()) Undefined(operand);
    const Items items = Iterate(operand);
    if (items.empty()) return Value::Undefined("No " + name + " item, sequence was empty.");
    return name == "first" ? items.front() : items.back();
  }
  if (name == "items") {
    NoArgs(args, name);
    if (operand.is_undefined()) return Value::List({});
    if (!operand.is_dict()) throw Error("Can only get item pairs from a mapping.");
    return CallDictMethod(operand, "items", {});
  }
  if (name == "list") {
    NoArgs(args, name);
    return Value::List(Iterate(operand));
  }
  if (name == "reverse") {
    NoArgs(args, name);
    if (operand.is_string()) {
      std::vector<std::string> cps = CodePoints(operand.string_value());
      std::string out;
      for (auto it = cps.rbegin(); it != cps.rend(); ++it) out += *it;
      return Value::String(out);
    }
    Items items = Iterate(operand);
    std::reverse(items.begin(), items.end());
    return Value::List(std::move(items));
  }
  if (name == "select" || name == "reject") {
    return SelectOrReject(operand, args, false, name == "select", name);
  }
  if (name == "selectattr" || name == "rejectattr") {
    return SelectOrReject(operand, args, true, name == "selectattr", name);
  }
  if (name == "map") return Map(operand, args);
  if (name == "int") return IntFilter(operand, args);
  if (name == "float") return FloatFilter(operand, args);
  if (name == "abs") {
    NoArgs(args, name);
    if (operand.type() == Value::Type::kFloat)
      return Value::Float(std::fabs(operand.float_value()));
    if (operand.is_number()) {
      if (operand.int_value() == INT64_MIN) throw Unsupported("integer arithmetic beyond 64 bits");
      return Value::Int(std::llabs(operand.int_value()));
    }
    throw Error("bad operand type for abs(): '" + operand.TypeName() + "'");
  }
  if (name == "indent") {
    Params p(args, {"width", "first", "blank"}, name);
    return Value::String(Indent(ToStr(operand), p.Get(0, Value::Int(4)),
                                Truthy(p.Get(1, Value::Bool(false))),
                                Truthy(p.Get(2, Value::Bool(false)))));
  }
  throw Unsupported("filter " + name);
}

bool ApplyTest(const std::string& name, const Value& operand, const CallArgs& args) {
  if (name == "defined" || name == "undefined") {
    NoArgs(args, name);
    return operand.is_undefined() == (name == "undefined");
  }
  const std::vector<std::string> one_arg = {
      "eq", "equalto", "==",          "ne", "!=", "lt", "lessthan", "<",          "le",
      "<=", "gt",      "greaterthan", ">",  "ge", ">=", "in",       "divisibleby"};
  if (std::find(one_arg.begin(), one_arg.end(), name) != one_arg.end()) {
    Params p(args, {"other"}, name);
    if (!p.has(0)) throw Error("test " + name + " needs an argument");
    const Value& other = p.Get(0, NoneValue());
    if (name == "in") return Contains(other, operand);
    if (name == "divisibleby") {
      return Equal(BinaryOp("%", operand, other), Value::Int(0));
    }
    return CompareTest(name, operand, other);
  }
  NoArgs(args, name);
  const Value::Type type = operand.type();
  if (name == "none") return type == Value::Type::kNone;
  if (name == "boolean") return type == Value::Type::kBool;
  if (name == "true") return type == Value::Type::kBool && operand.bool_value();
  if (name == "false") return type == Value::Type::kBool && !operand.bool_value();
  if (name == "integer") return type == Value::Type::kInt;
  if (name == "float") return type == Value::Type::kFloat;
  if (name == "number") return operand.is_number();
  if (name == "string") return type == Value::Type::kString;
  if (name == "mapping") return type == Value::Type::kDict;
  if (name == "callable") return type == Value::Type::kFunction;
  if (name == "iterable" || name == "sequence") {
    return type == Value::Type::kUndefined || type == Value::Type::kString ||
           type == Value::Type::kList || type == Value::Type::kDict;
  }
  if (name == "even" || name == "odd") {
    const Value remainder = BinaryOp("%", operand, Value::Int(2));
    return Equal(remainder, Value::Int(name == "even" ? 0 : 1));
  }
  if (name == "lower" || name == "upper") {
    return CaseIs(ToStr(operand), name == "lower" ? Category::kLl : Category::kLu);
  }
  throw Unsupported("test " + name);
}

}  // namespace tuneledger::train::jinja
