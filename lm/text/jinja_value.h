// The values a Jinja chat template computes with, modelled on the Python objects Jinja (and
// transformers' ImmutableSandboxedEnvironment) hands a template: Undefined, None, bool, int,
// float, str, list/tuple, dict (insertion-ordered, as Python's), a namespace (the one mutable
// object a template can make) and callables (macros, bound methods, globals such as
// raise_exception). Python's spelling of each is kept, because {{ value }} prints str(value):
// None, True, 1.5, 1e-05, ['a', 'b'], {'k': 1}; and tojson prints json.dumps(value).
//
// Strings are UTF-8; their length, indices and slices count code points, as Python's do.
//
// Thread safety: a Value is immutable except a namespace's attributes; values are made and used
// by one render on one thread.
#ifndef TUNELEDGER_LM_TEXT_JINJA_VALUE_H_
#define TUNELEDGER_LM_TEXT_JINJA_VALUE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace tuneledger::train::jinja {

class Value;

// What value operations and builtins throw; the evaluator (jinja_template.cc) rethrows them as a
// TrainError naming the template and the line. Error: Python would raise too (TypeError,
// UndefinedError, ...). Unsupported: what() names a construct Jinja has and this subset lacks.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
class Unsupported : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Arguments of a call: positional, then keyword (name, value) in call order.
struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

using Function = std::function<Value(const CallArgs&)>;

class Value {
 public:
  enum class Type {
    kUndefined,
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kList,
    kDict,
    kNamespace,
    kFunction
  };
  using Items = std::vector<Value>;
  using Entries = std::vector<std::pair<Value, Value>>;  // dict: insertion order

  // Undefined; `name` says what was looked up, for error messages ("'x' is undefined").
  Value() = default;
  static Value Undefined(std::string name);
  static Value None();
  static Value Bool(bool value);
  static Value Int(int64_t value);
  static Value Float(double value);
  static Value String(std::string value);
  static Value List(Items items, bool tuple = false);
  static Value Dict(Entries entries);
  static Value Namespace(Entries entries);
  static Value Callable(std::string name, Function function);

  Type type() const { return type_; }
  bool is_undefined() const { return type_ == Type::kUndefined; }
  bool is_none() const { return type_ == Type::kNone; }
  bool is_string() const { return type_ == Type::kString; }
  bool is_list() const { return type_ == Type::kList; }
  bool is_dict() const { return type_ == Type::kDict; }
  bool is_tuple() const { return type_ == Type::kList && tuple_; }
  // bool, int or float (Python's numbers; bool is an int there).
  bool is_number() const {
    return type_ == Type::kBool || type_ == Type::kInt || type_ == Type::kFloat;
  }

  bool bool_value() const { return bool_; }
  int64_t int_value() const { return type_ == Type::kBool ? int64_t{bool_} : int_; }
  double float_value() const {
    return type_ == Type::kFloat ? float_ : static_cast<double>(int_value());
  }
  const std::string& string_value() const { return *string_; }
  const Items& items() const { return *items_; }
  const Entries& entries() const { return *entries_; }
  Entries& namespace_entries() const { return *entries_; }
  const std::string& name() const { return *string_; }  // undefined / callable name
  const Function& function() const { return *function_; }

  // Dict or namespace lookup by key; nullptr when absent.
  const Value* Find(const Value& key) const;
  const Value* Find(const std::string& key) const;

  // Python's type name ("str", "dict", "NoneType", ...), for error messages.
  std::string TypeName() const;

 private:
  Type type_ = Type::kUndefined;
  bool bool_ = false;
  bool tuple_ = false;
  int64_t int_ = 0;
  double float_ = 0;
  std::shared_ptr<const std::string> string_;
  std::shared_ptr<const Items> items_;
  std::shared_ptr<Entries> entries_;
  std::shared_ptr<const Function> function_;
};

// Python's bool(value); Undefined is false.
bool Truthy(const Value& value);
// Python's ==: 1 == 1.0 == True, lists and dicts element-wise, Undefined == Undefined.
bool Equal(const Value& a, const Value& b);
// Python's <, or std::nullopt when Python raises TypeError (e.g. 1 < 'a').
std::optional<bool> Less(const Value& a, const Value& b);

// str(value) as Jinja prints it: Undefined -> "", None -> "None", floats as Python's repr.
std::string ToStr(const Value& value);
// repr(value), as Python prints list and dict elements.
std::string Repr(const Value& value);
// Python's repr of a float: the shortest round-trip digits, "1.0", "1e-05", "1e+16", "inf".
std::string FloatRepr(double value);

struct DumpOptions {
  bool ensure_ascii = false;
  std::optional<std::string> indent;  // json.dumps(indent=): spaces, or a string
  std::string item_separator = ", ";  // ", " by default, "," when indent is given
  std::string key_separator = ": ";
  bool sort_keys = false;
};
// Python's json.dumps(value, ...). Throws Error for values JSON cannot hold (Undefined,
// callables) with the offending type named.
std::string DumpJson(const Value& value, const DumpOptions& options);

// JSON -> Value: objects become dicts in the JSON object's iteration order (nlohmann::json
// sorts keys; nlohmann::ordered_json keeps file order, as Python's json.loads does). Throws
// TrainError for an integer beyond 64 bits (Python's would stay exact).
Value FromJson(const nlohmann::json& json);
Value FromJson(const nlohmann::ordered_json& json);

// UTF-8 helpers for code-point semantics.
std::vector<std::string> CodePoints(const std::string& text);  // one UTF-8 string per code point
size_t CodePointCount(const std::string& text);
// Python's str.isspace() for one code point (Unicode White_Space plus U+001C..U+001F).
bool IsPythonSpace(char32_t cp);

}  // namespace tuneledger::train::jinja

#endif  // TUNELEDGER_LM_TEXT_JINJA_VALUE_H_
