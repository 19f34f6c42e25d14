// What a chat template can call: the filters, tests, methods (str, dict) and globals that
// transformers' ImmutableSandboxedEnvironment offers and chat templates use, each with jinja2's
// or Python's exact behaviour. The names listed in the .cc are the whole subset; the parser
// refuses a filter or test outside it, and a method outside it is Unsupported when called.
//
//   filters  abs capitalize count d default first float indent int items join last length list
//            lower map reject rejectattr replace reverse select selectattr string title tojson
//            trim upper
//   tests    boolean callable defined divisibleby eq equalto even false float ge gt in integer
//            iterable le lower lt mapping ne none number odd sameas sequence string true
//            undefined upper (and ==, !=, <, <=, >, >=, greaterthan, lessthan)
//   methods  str: capitalize count endswith find isalnum isalpha isdigit islower isspace
//            isupper join lower lstrip replace rfind rsplit rstrip split splitlines startswith
//            strip title upper; dict: get items keys values
//   globals  namespace, dict, range, raise_exception, strftime_now (built by jinja_template.cc)
//
// Case mapping (upper, lower, title, capitalize) covers ASCII and lowercases any letter;
// uppercasing a non-ASCII letter is Unsupported rather than a silent difference from Python.
// tojson is transformers' override: json.dumps(x, ensure_ascii=False, indent=None,
// separators=None, sort_keys=False).
//
// Thread safety: pure functions.
#ifndef TUNELEDGER_LM_TEXT_JINJA_BUILTINS_H_
#define TUNELEDGER_LM_TEXT_JINJA_BUILTINS_H_

#include <string>

#include "lm/text/jinja_value.h"

namespace tuneledger::train::jinja {

bool IsSupportedFilter(const std::string& name);
bool IsSupportedTest(const std::string& name);

// Throws Error for what Python would refuse and Unsupported for a construct outside the subset.
Value ApplyFilter(const std::string& name, const Value& operand, const CallArgs& args);
bool ApplyTest(const std::string& name, const Value& operand, const CallArgs& args);

// jinja2's environment.getattr (`x.name`: a method or attribute first, then the item) and
// getitem (`x[key]`: the item first, then the attribute); what is missing is Undefined.
// Indices count from the end when negative; strings index by code point.
Value GetAttribute(const Value& object, const std::string& name);
Value GetItem(const Value& object, const Value& key);
// Python's object[start:stop:step]; null bounds are None.
Value Slice(const Value& object, const Value* start, const Value* stop, const Value* step);

// Python's iter(value) as a list: list items, dict keys, string code points; Undefined is
// empty. Throws Error for what is not iterable.
Value::Items Iterate(const Value& value);

// The binary operators: + - * / // % ** ~, and `in`.
Value BinaryOp(const std::string& op, const Value& a, const Value& b);
bool Contains(const Value& container, const Value& item);

// json.dumps as transformers' tojson filter calls it.
std::string ToJson(const Value& value, const CallArgs& args);

}  // namespace tuneledger::train::jinja

#endif  // TUNELEDGER_LM_TEXT_JINJA_BUILTINS_H_
