// The syntax tree of a parsed Jinja template (jinja_parser.h builds it, jinja_template.cc
// evaluates it). Two node kinds: Expr (a value-producing expression) and Node (a statement:
// text, {{ output }}, if, for, set, macro, break, continue). Every node keeps its source line
// for error messages.
//
// Thread safety: immutable after parsing.
#ifndef TUNELEDGER_LM_TEXT_JINJA_AST_H_
#define TUNELEDGER_LM_TEXT_JINJA_AST_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "lm/text/jinja_value.h"

namespace tuneledger::train::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;
using KeywordArgs = std::vector<std::pair<std::string, ExprPtr>>;

struct Expr {
  enum class Kind {
    kLiteral,   // value
    kName,      // name
    kList,      // args: items
    kTuple,     // args: items
    kDict,      // args: key0, value0, key1, value1, ...
    kGetAttr,   // args[0] object; name: the attribute
    kGetItem,   // args[0] object, args[1] key
    kSlice,     // args[0] object, args[1..3] start, stop, step (each may be null)
    kCall,      // args[0] callee, args[1..] positional; kwargs
    kFilter,    // args[0] operand, args[1..] positional; kwargs; name: the filter
    kTest,      // args[0] operand, args[1..] positional; name: the test; negated
    kNegate,    // args[0]: -x
    kPlus,      // args[0]: +x
    kNot,       // args[0]
    kBinary,    // args[0] op args[1]; name: + - * / // % ** ~
    kAnd,       // args[0] and args[1]
    kOr,        // args[0] or args[1]
    kCompare,   // args[0] ops[0] args[1] ops[1] args[2] ...; ops: == != < <= > >= in notin
    kCondExpr,  // args[1] if args[0] else args[2] (args[2] null: undefined)
  };
  Kind kind = Kind::kLiteral;
  int line = 0;
  std::string name;
  Value value;
  std::vector<ExprPtr> args;
  KeywordArgs kwargs;
  std::vector<std::string> ops;
  bool negated = false;
};

struct Node;
using Body = std::vector<std::unique_ptr<Node>>;

struct Node {
  enum class Kind {
    kText,      // text
    kOutput,    // {{ expr }}
    kIf,        // branches (test, body) for if / elif ...; else_body
    kFor,       // for targets in expr [if filter]: body [else: else_body]
    kSet,       // set targets = expr, or set targets[0].attribute = expr (namespace)
    kSetBlock,  // set targets[0] %} body {% endset
    kMacro,     // macro name(params): body
    kBreak,
    kContinue,
  };
  Kind kind = Kind::kText;
  int line = 0;
  std::string text;
  ExprPtr expr;
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body body;
  Body else_body;
  std::vector<std::string> targets;
  std::string attribute;  // kSet on a namespace: ns.attribute
  ExprPtr filter;
  KeywordArgs params;  // kMacro: name and default (null when none)
  std::string name;    // kMacro
};

}  // namespace tuneledger::train::jinja

#endif  // TUNELEDGER_LM_TEXT_JINJA_AST_H_
