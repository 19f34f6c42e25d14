#include "lm/text/jinja_value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "lm/text/unicode.h"
#include "lm/trainer_error.h"

namespace tuneledger::train::jinja {
namespace {

// Python's str.isprintable() for one code point: not Cc, Cf, Cs, Co, Cn, Zl, Zp, or Zs but space.
bool IsPrintable(char32_t cp) {
  if (cp == U' ') return true;
  switch (GetCategory(cp)) {
    case Category::kCc:
    case Category::kCf:
    case Category::kCs:
    case Category::kCo:
    case Category::kCn:
    case Category::kZl:
    case Category::kZp:
    case Category::kZs:
      return false;
    default:
      return true;
  }
}

std::string Hex(uint32_t value, int digits) {
  char buffer[16];
  std::snprintf(buffer, sizeof(buffer), "%0*x", digits, value);
  return buffer;
}

std::string StringRepr(const std::string& text) {
  const bool has_single = text.find('\'') != std::string::npos;
  const bool has_double = text.find('"') != std::string::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  std::string out(1, quote);
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t start = pos;
    const char32_t cp = DecodeUtf8(text, &pos);
    if (cp == U'\\' || cp == static_cast<char32_t>(quote)) {
      out += '\\';
      out += static_cast<char>(cp);
    } else if (cp == U'\t') {
      out += "\\t";
    } else if (cp == U'\n') {
      out += "\\n";
    } else if (cp == U'\r') {
      out += "\\r";
    } else if (cp < 0x20 || cp == 0x7f) {
      out += "\\x" + Hex(cp, 2);
    } else if (cp < 0x7f || IsPrintable(cp)) {
      out.append(text, start, pos - start);
    } else if (cp <= 0xff) {
      out += "\\x" + Hex(cp, 2);
    } else if (cp <= 0xffff) {
      out += "\\u" + Hex(cp, 4);
    } else {
      out += "\\U" + Hex(cp, 8);
    }
  }
  out += quote;
  return out;
}

// json.dumps' string encoding (ensure_ascii escapes everything above U+007F, as UTF-16).
std::string JsonString(const std::string& text, bool ensure_ascii) {
  std::string out = "\"";
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t start = pos;
    const char32_t cp = DecodeUtf8(text, &pos);
    switch (cp) {
      case U'"':
        out += "\\\"";
        continue;
      case U'\\':
        out += "\\\\";
        continue;
      case U'\n':
        out += "\\n";
        continue;
      case U'\r':
        out += "\\r";
        continue;
      case U'\t':
        out += "\\t";
        continue;
      case U'\b':
        out += "\\b";
        continue;
      case U'\f':
        out += "\\f";
        continue;
      default:
        break;
    }
    if (cp < 0x20) {
      out += "\\u" + Hex(cp, 4);
    } else if (!ensure_ascii || cp < 0x7f) {
      out.append(text, start, pos - start);
    } else if (cp <= 0xffff) {
      out += "\\u" + Hex(cp, 4);
    } else {
      const uint32_t v = cp - 0x10000;
      out += "\\u" + Hex(0xd800 + (v >> 10), 4) + "\\u" + Hex(0xdc00 + (v & 0x3ff), 4);
    }
  }
  return out + "\"";
}

std::string JsonFloat(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "Infinity" : "-Infinity";
  return FloatRepr(value);
}

void Dump(const Value& value, const DumpOptions& options, int depth, std::string* out) {
  auto newline = [&](int level) {
    if (!options.indent) return;
    *out += '\n';
    for (int i = 0; i < level; ++i) *out += *options.indent;
  };
  switch (value.type()) {
    case Value::Type::kNone:
      *out += "null";
      return;
    case Value::Type::kBool:
      *out += value.bool_value() ? "true" : "false";
      return;
    case Value::Type::kInt:
      *out += std::to_string(value.int_value());
      return;
    case Value::Type::kFloat:
      *out += JsonFloat(value.float_value());
      return;
    case Value::Type::kString:
      *out += JsonString(value.string_value(), options.ensure_ascii);
      return;
    case Value::Type::kList: {
      if (value.items().empty()) {
        *out += "[]";
        return;
      }
      *out += '[';
      newline(depth + 1);
      for (size_t i = 0; i < value.items().size(); ++i) {
        if (i > 0) {
          *out += options.item_separator;
          newline(depth + 1);
        }
        Dump(value.items()[i], options, depth + 1, out);
      }
      newline(depth);
      *out += ']';
      return;
    }
    case Value::Type::kDict: {
      if (value.entries().empty()) {
        *out += "{}";
        return;
      }
      std::vector<const std::pair<Value, Value>*> entries;
      for (const auto& entry : value.entries()) entries.push_back(&entry);
      if (options.sort_keys) {
        std::stable_sort(entries.begin(), entries.end(), [](const auto* a, const auto* b) {
          const std::optional<bool> less = Less(a->first, b->first);
          if (!less) throw Error("tojson: sort_keys needs keys of one comparable type");
          return *less;
        });
      }
      *out += '{';
      newline(depth + 1);
      for (size_t i = 0; i < entries.size(); ++i) {
        if (i > 0) {
          *out += options.item_separator;
          newline(depth + 1);
        }
        const Value& key = entries[i]->first;
        // json.dumps turns scalar keys into strings; other keys are a TypeError.
        if (key.is_string()) {
          *out += JsonString(key.string_value(), options.ensure_ascii);
        } else if (key.type() == Value::Type::kInt) {
          *out += '"' + std::to_string(key.int_value()) + '"';
        } else if (key.type() == Value::Type::kFloat) {
          *out += '"' + JsonFloat(key.float_value()) + '"';
        } else if (key.type() == Value::Type::kBool) {
          *out += key.bool_value() ? "\"true\"" : "\"false\"";
        } else if (key.is_none()) {
          *out += "\"null\"";
        } else {
          throw Error("tojson: keys must be str, int, float, bool or None, not " + key.TypeName());
        }
        *out += options.key_separator;
        Dump(entries[i]->second, options, depth + 1, out);
      }
      newline(depth);
      *out += '}';
      return;
    }
    default:
      throw Error("tojson: Object of type " + value.TypeName() + " is not JSON serializable");
  }
}

template <typename Json>
Value FromJsonImpl(const Json& json) {
  switch (json.type()) {
    case nlohmann::json::value_t::null:
      return Value::None();
    case nlohmann::json::value_t::boolean:
      return Value::Bool(json.template get<bool>());
    case nlohmann::json::value_t::number_integer:
      return Value::Int(json.template get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: {
      const uint64_t value = json.template get<uint64_t>();
      if (value > static_cast<uint64_t>(INT64_MAX)) {
        // The value itself stays out of the message: it comes from the data.
        throw TrainError("a JSON integer beyond 64 bits cannot enter a chat template");
      }
      return Value::Int(static_cast<int64_t>(value));
    }
    case nlohmann::json::value_t::number_float:
      return Value::Float(json.template get<double>());
    case nlohmann::json::value_t::string:
      return Value::String(json.template get<std::string>());
    case nlohmann::json::value_t::array: {
      Value::Items items;
      items.reserve(json.size());
      for (const auto& item : json) items.push_back(FromJsonImpl(item));
      return Value::List(std::move(items));
    }
    case nlohmann::json::value_t::object: {
      Value::Entries entries;
      for (auto it = json.begin(); it != json.end(); ++it) {
        entries.emplace_back(Value::String(it.key()), FromJsonImpl(it.value()));
      }
      return Value::Dict(std::move(entries));
    }
    default:
      throw TrainError("a JSON value of an unsupported type (binary) cannot enter a template");
  }
}

}  // namespace

Value Value::Undefined(std::string name) {
  Value value;
  value.string_ = std::make_shared<const std::string>(std::move(name));
  return value;
}

Value Value::None() {
  Value value;
  value.type_ = Type::kNone;
  return value;
}

Value Value::Bool(bool b) {
  Value value;
  value.type_ = Type::kBool;
  value.bool_ = b;
  return value;
}

Value Value::Int(int64_t i) {
  Value value;
  value.type_ = Type::kInt;
  value.int_ = i;
  return value;
}

Value Value::Float(double f) {
  Value value;
  value.type_ = Type::kFloat;
  value.float_ = f;
  return value;
}

Value Value::String(std::string s) {
  Value value;
  value.type_ = Type::kString;
  value.string_ = std::make_shared<const std::string>(std::move(s));
  return value;
}

Value Value::List(Items items, bool tuple) {
  Value value;
  value.type_ = Type::kList;
  value.tuple_ = tuple;
  value.items_ = std::make_shared<const Items>(std::move(items));
  return value;
}

Value Value::Dict(Entries entries) {
  Value value;
  value.type_ = Type::kDict;
  value.entries_ = std::make_shared<Entries>(std::move(entries));
  return value;
}

Value Value::Namespace(Entries entries) {
  Value value = Dict(std::move(entries));
  value.type_ = Type::kNamespace;
  return value;
}

Value Value::Callable(std::string name, Function function) {
  Value value;
  value.type_ = Type::kFunction;
  value.string_ = std::make_shared<const std::string>(std::move(name));
  value.function_ = std::make_shared<const Function>(std::move(function));
  return value;
}

const Value* Value::Find(const Value& key) const {
  if (type_ != Type::kDict && type_ != Type::kNamespace) return nullptr;
  for (const auto& [k, v] : *entries_) {
    if (Equal(k, key)) return &v;
  }
  return nullptr;
}

const Value* Value::Find(const std::string& key) const {
  if (type_ != Type::kDict && type_ != Type::kNamespace) return nullptr;
  for (const auto& [k, v] : *entries_) {
    if (k.is_string() && k.string_value() == key) return &v;
  }
  return nullptr;
}

std::string Value::TypeName() const {
  switch (type_) {
    case Type::kUndefined:
      return "Undefined";
    case Type::kNone:
      return "NoneType";
    case Type::kBool:
      return "bool";
    case Type::kInt:
      return "int";
    case Type::kFloat:
      return "float";
    case Type::kString:
      return "str";
    case Type::kList:
      return tuple_ ? "tuple" : "list";
    case Type::kDict:
      return "dict";
    case Type::kNamespace:
      return "Namespace";
    case Type::kFunction:
      return "function";
  }
  return "object";
}

bool Truthy(const Value& value) {
  switch (value.type()) {
    case Value::Type::kUndefined:
    case Value::Type::kNone:
      return false;
    case Value::Type::kBool:
      return value.bool_value();
    case Value::Type::kInt:
      return value.int_value() != 0;
    case Value::Type::kFloat:
      return value.float_value() != 0;
    case Value::Type::kString:
      return !value.string_value().empty();
    case Value::Type::kList:
      return !value.items().empty();
    case Value::Type::kDict:
      return !value.entries().empty();
    default:
      return true;
  }
}

bool Equal(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.type() == Value::Type::kFloat || b.type() == Value::Type::kFloat) {
      return a.float_value() == b.float_value();
    }
    return a.int_value() == b.int_value();
  }
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case Value::Type::kUndefined:
    case Value::Type::kNone:
      return true;
    case Value::Type::kString:
      return a.string_value() == b.string_value();
    case Value::Type::kList: {
      if (a.is_tuple() != b.is_tuple() || a.items().size() != b.items().size()) return false;
      for (size_t i = 0; i < a.items().size(); ++i) {
        if (!Equal(a.items()[i], b.items()[i])) return false;
      }
      return true;
    }
    case Value::Type::kDict: {
      if (a.entries().size() != b.entries().size()) return false;
      for (const auto& [key, value] : a.entries()) {
        const Value* other = b.Find(key);
        if (other == nullptr || !Equal(value, *other)) return false;
      }
      return true;
    }
    case Value::Type::kNamespace:
      return &a.namespace_entries() == &b.namespace_entries();
    default:
      return false;
  }
}

std::optional<bool> Less(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.type() == Value::Type::kFloat || b.type() == Value::Type::kFloat) {
      return a.float_value() < b.float_value();
    }
    return a.int_value() < b.int_value();
  }
  // UTF-8 byte order is code point order, which is Python's string order.
  if (a.is_string() && b.is_string()) return a.string_value() < b.string_value();
  if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
    const auto& x = a.items();
    const auto& y = b.items();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (Equal(x[i], y[i])) continue;
      return Less(x[i], y[i]);
    }
    return x.size() < y.size();
  }
  return std::nullopt;
}

std::string FloatRepr(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  // The shortest digits that round-trip, as d.ddde±x; then Python's layout: positional for
  // exponents -4..15, else d.ddde±XX.
  char buffer[64];
  const auto result =
      std::to_chars(buffer, buffer + sizeof(buffer), value, std::chars_format::scientific);
  std::string scientific(buffer, result.ptr);
  std::string sign;
  if (scientific[0] == '-') {
    sign = "-";
    scientific.erase(0, 1);
  }
  const size_t e = scientific.find('e');
  std::string digits = scientific.substr(0, e);
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  const int exponent = std::atoi(scientific.c_str() + e + 1);
  if (exponent >= -4 && exponent < 16) {
    std::string out;
    if (exponent < 0) {
      out = "0." + std::string(-exponent - 1, '0') + digits;
    } else if (static_cast<int>(digits.size()) <= exponent + 1) {
      out = digits + std::string(exponent + 1 - digits.size(), '0') + ".0";
    } else {
      out = digits.substr(0, exponent + 1) + "." + digits.substr(exponent + 1);
    }
    return sign + out;
  }
  std::string mantissa = digits.substr(0, 1);
  if (digits.size() > 1) mantissa += "." + digits.substr(1);
  char exp[16];
  std::snprintf(exp, sizeof(exp), "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
  return sign + mantissa + exp;
}

std::string Repr(const Value& value) {
  switch (value.type()) {
    case Value::Type::kString:
      return StringRepr(value.string_value());
    case Value::Type::kList: {
      std::string out = value.is_tuple() ? "(" : "[";
      for (size_t i = 0; i < value.items().size(); ++i) {
        if (i > 0) out += ", ";
        out += Repr(value.items()[i]);
      }
      if (value.is_tuple() && value.items().size() == 1) out += ",";
      return out + (value.is_tuple() ? ")" : "]");
    }
    case Value::Type::kDict: {
      std::string out = "{";
      bool first = true;
      for (const auto& [key, item] : value.entries()) {
        if (!first) out += ", ";
        first = false;
        out += Repr(key) + ": " + Repr(item);
      }
      return out + "}";
    }
    default:
      return ToStr(value);
  }
}

std::string ToStr(const Value& value) {
  switch (value.type()) {
    case Value::Type::kUndefined:
      return "";
    case Value::Type::kNone:
      return "None";
    case Value::Type::kBool:
      return value.bool_value() ? "True" : "False";
    case Value::Type::kInt:
      return std::to_string(value.int_value());
    case Value::Type::kFloat:
      return FloatRepr(value.float_value());
    case Value::Type::kString:
      return value.string_value();
    case Value::Type::kNamespace: {
      Value as_dict = Value::Dict(value.namespace_entries());
      return "<Namespace " + Repr(as_dict) + ">";
    }
    case Value::Type::kFunction:
      return "<function " + value.name() + ">";
    default:
      return Repr(value);
  }
}

std::string DumpJson(const Value& value, const DumpOptions& options) {
  std::string out;
  Dump(value, options, 0, &out);
  return out;
}

Value FromJson(const nlohmann::json& json) { return FromJsonImpl(json); }
Value FromJson(const nlohmann::ordered_json& json) { return FromJsonImpl(json); }

std::vector<std::string> CodePoints(const std::string& text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t start = pos;
    DecodeUtf8(text, &pos);
    out.push_back(text.substr(start, pos - start));
  }
  return out;
}

size_t CodePointCount(const std::string& text) {
  size_t count = 0;
  for (unsigned char c : text) count += (c & 0xc0) != 0x80;
  return count;
}

bool IsPythonSpace(char32_t cp) { return (cp >= 0x1c && cp <= 0x1f) || IsWhiteSpace(cp); }

}  // namespace tuneledger::train::jinja
