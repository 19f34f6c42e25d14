#include "lm/text/jinja_template.h"

#include <ctime>
#include <memory>
#include <unordered_map>

#include "lm/text/jinja_builtins.h"
#include "lm/text/jinja_parser.h"
#include "lm/trainer_error.h"

namespace tuneledger::train::jinja {
namespace {

// raise_exception(message), carried up to the template's edge.
class Raised : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// jinja2's sandbox refuses ranges longer than this.
constexpr int64_t kMaxRange = 100000;

class Scope {
 public:
  explicit Scope(std::shared_ptr<Scope> parent) : parent_(std::move(parent)) {}

  const Value* Find(const std::string& name) const {
    for (const Scope* scope = this; scope != nullptr; scope = scope->parent_.get()) {
      const auto it = scope->vars_.find(name);
      if (it != scope->vars_.end()) return &it->second;
    }
    return nullptr;
  }
  void Set(const std::string& name, Value value) { vars_[name] = std::move(value); }

 private:
  std::shared_ptr<Scope> parent_;
  std::unordered_map<std::string, Value> vars_;
};
using ScopePtr = std::shared_ptr<Scope>;

Value MakeDict(const CallArgs& args, const std::string& what, bool as_namespace) {
  Value::Entries entries;
  if (args.positional.size() > 1) throw Error(what + "() takes at most one positional argument");
  if (!args.positional.empty()) {
    if (!args.positional[0].is_dict()) throw Unsupported(what + "() of a non-mapping");
    entries = args.positional[0].entries();
  }
  for (const auto& [key, value] : args.keyword) {
    if (as_namespace && !key.empty() && key[0] == '_') {
      throw Error("Chat templates cannot store underscore-prefixed attributes on a namespace");
    }
    entries.emplace_back(Value::String(key), value);
  }
  return as_namespace ? Value::Namespace(std::move(entries)) : Value::Dict(std::move(entries));
}

Value Range(const CallArgs& args) {
  if (!args.keyword.empty() || args.positional.empty() || args.positional.size() > 3) {
    throw Error("range() takes 1 to 3 positional arguments");
  }
  auto number = [&](size_t i) {
    const Value& v = args.positional[i];
    if (v.type() != Value::Type::kInt && v.type() != Value::Type::kBool) {
      throw Error("range(): '" + v.TypeName() + "' object cannot be interpreted as an integer");
    }
    return v.int_value();
  };
  const int64_t start = args.positional.size() == 1 ? 0 : number(0);
  const int64_t stop = args.positional.size() == 1 ? number(0) : number(1);
  const int64_t step = args.positional.size() == 3 ? number(2) : 1;
  if (step == 0) throw Error("range() arg 3 must not be zero");
  Value::Items items;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
    if (static_cast<int64_t>(items.size()) >= kMaxRange) {
      throw Error("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
    }
    items.push_back(Value::Int(i));
  }
  return Value::List(std::move(items));
}

Value StrftimeNow(const CallArgs& args) {
  if (args.positional.size() != 1 || !args.keyword.empty() || !args.positional[0].is_string()) {
    throw Error("strftime_now() takes one format string");
  }
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char buffer[512];
  const size_t size =
      std::strftime(buffer, sizeof(buffer), args.positional[0].string_value().c_str(), &local);
  return Value::String(std::string(buffer, size));
}

ScopePtr MakeGlobals() {
  auto globals = std::make_shared<Scope>(nullptr);
  globals->Set("raise_exception",
               Value::Callable("raise_exception", [](const CallArgs& args) -> Value {
                 if (args.positional.size() != 1 || !args.keyword.empty()) {
                   throw Error("raise_exception() takes one message");
                 }
                 throw Raised(ToStr(args.positional[0]));
               }));
  globals->Set("strftime_now", Value::Callable("strftime_now", StrftimeNow));
  globals->Set("range", Value::Callable("range", Range));
  globals->Set("dict", Value::Callable("dict", [](const CallArgs& args) {
                 return MakeDict(args, "dict", /*as_namespace=*/false);
               }));
  globals->Set("namespace", Value::Callable("namespace", [](const CallArgs& args) {
                 return MakeDict(args, "namespace", /*as_namespace=*/true);
               }));
  for (const char* name : {"lipsum", "cycler", "joiner"}) {
    const std::string construct = std::string(name) + "()";
    globals->Set(name, Value::Callable(name, [construct](const CallArgs&) -> Value {
                   throw Unsupported(construct);
                 }));
  }
  return globals;
}

class Renderer {
 public:
  Renderer(const std::string& where, const std::string& source) : where_(where), source_(source) {}

  enum class Flow { kNormal, kBreak, kContinue };

  Flow Exec(const Body& body, const ScopePtr& scope, std::string* out) {
    for (const auto& node : body) {
      const Flow flow = ExecNode(*node, scope, out);
      if (flow != Flow::kNormal) return flow;
    }
    return Flow::kNormal;
  }

 private:
  // The template's message only when the template holds it verbatim: one built from the data
  // ('Unknown role: ' + message.role) would copy the data into the error, and errors never
  // quote the data.
  [[noreturn]] void RaiseFromTemplate(int line, const std::string& message) const {
    const std::string at = where_ + ": raise_exception at line " + std::to_string(line);
    if (!message.empty() && source_.find(message) != std::string::npos) {
      throw TrainError(at + ": " + message);
    }
    throw TrainError(at +
                     " (its message is not a literal of the template, so it may quote the "
                     "data, and is left out)");
  }

  [[noreturn]] void Fail(int line, const std::string& what) const {
    throw TrainError(where_ + ": line " + std::to_string(line) + ": " + what);
  }

  Flow ExecNode(const Node& node, const ScopePtr& scope, std::string* out) {
    try {
      return ExecNodeUnchecked(node, scope, out);
    } catch (const Error& e) {
      Fail(node.line, e.what());
    } catch (const Unsupported& e) {
      throw TrainError(where_ + ": unsupported Jinja construct '" + e.what() + "' at line " +
                       std::to_string(node.line));
    } catch (const Raised& e) {
      RaiseFromTemplate(node.line, e.what());
    }
  }

  Flow ExecNodeUnchecked(const Node& node, const ScopePtr& scope, std::string* out) {
    switch (node.kind) {
      case Node::Kind::kText:
        *out += node.text;
        return Flow::kNormal;
      case Node::Kind::kOutput:
        *out += ToStr(Eval(*node.expr, scope));
        return Flow::kNormal;
      case Node::Kind::kIf:
        for (const auto& [test, body] : node.branches) {
          if (Truthy(Eval(*test, scope))) return Exec(body, scope, out);
        }
        return Exec(node.else_body, scope, out);
      case Node::Kind::kFor:
        return ExecFor(node, scope, out);
      case Node::Kind::kSet:
        Assign(node, Eval(*node.expr, scope), scope);
        return Flow::kNormal;
      case Node::Kind::kSetBlock: {
        std::string text;
        Exec(node.body, scope, &text);
        scope->Set(node.targets[0], Value::String(std::move(text)));
        return Flow::kNormal;
      }
      case Node::Kind::kMacro:
        scope->Set(node.name, MakeMacro(node, scope));
        return Flow::kNormal;
      case Node::Kind::kBreak:
        return Flow::kBreak;
      case Node::Kind::kContinue:
        return Flow::kContinue;
    }
    return Flow::kNormal;
  }

  // Binds `value` to `targets` (one name, or several unpacked from a sequence).
  void Bind(const std::vector<std::string>& targets, const Value& value, Scope* scope) {
    if (targets.size() == 1) {
      scope->Set(targets[0], value);
      return;
    }
    const Value::Items items = Iterate(value);
    if (items.size() != targets.size()) {
      throw Error("cannot unpack " + std::to_string(items.size()) + " values into " +
                  std::to_string(targets.size()) + " names");
    }
    for (size_t i = 0; i < targets.size(); ++i) scope->Set(targets[i], items[i]);
  }

  void Assign(const Node& node, const Value& value, const ScopePtr& scope) {
    if (node.attribute.empty()) {
      Bind(node.targets, value, scope.get());
      return;
    }
    const Value* target = scope->Find(node.targets[0]);
    if (target == nullptr || target->type() != Value::Type::kNamespace) {
      throw Error("cannot assign attribute on non-namespace object");
    }
    if (node.attribute[0] == '_') {
      throw Error("Chat templates cannot store underscore-prefixed attributes on a namespace");
    }
    Value::Entries& entries = target->namespace_entries();
    for (auto& [key, item] : entries) {
      if (key.is_string() && key.string_value() == node.attribute) {
        item = value;
        return;
      }
    }
    entries.emplace_back(Value::String(node.attribute), value);
  }

  Flow ExecFor(const Node& node, const ScopePtr& scope, std::string* out) {
    Value::Items items = Iterate(Eval(*node.expr, scope));
    if (node.filter) {
      Value::Items kept;
      for (Value& item : items) {
        auto probe = std::make_shared<Scope>(scope);
        Bind(node.targets, item, probe.get());
        if (Truthy(Eval(*node.filter, probe))) kept.push_back(std::move(item));
      }
      items = std::move(kept);
    }
    if (items.empty()) {
      Exec(node.else_body, std::make_shared<Scope>(scope), out);
      return Flow::kNormal;
    }
    const int64_t length = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < length; ++i) {
      auto iteration = std::make_shared<Scope>(scope);
      Bind(node.targets, items[static_cast<size_t>(i)], iteration.get());
      iteration->Set("loop", LoopValue(items, i));
      if (Exec(node.body, iteration, out) == Flow::kBreak) break;
    }
    return Flow::kNormal;
  }

  static Value LoopValue(const Value::Items& items, int64_t i) {
    const int64_t length = static_cast<int64_t>(items.size());
    Value::Entries loop;
    auto set = [&](const char* key, Value value) {
      loop.emplace_back(Value::String(key), std::move(value));
    };
    set("index", Value::Int(i + 1));
    set("index0", Value::Int(i));
    set("revindex", Value::Int(length - i));
    set("revindex0", Value::Int(length - i - 1));
    set("first", Value::Bool(i == 0));
    set("last", Value::Bool(i == length - 1));
    set("length", Value::Int(length));
    set("depth", Value::Int(1));
    set("depth0", Value::Int(0));
    if (i > 0) set("previtem", items[static_cast<size_t>(i - 1)]);
    if (i + 1 < length) set("nextitem", items[static_cast<size_t>(i + 1)]);
    set("cycle", Value::Callable("loop.cycle", [i](const CallArgs& args) {
          if (args.positional.empty()) throw Error("no items for cycling given");
          return args.positional[static_cast<size_t>(i) % args.positional.size()];
        }));
    return Value::Dict(std::move(loop));
  }

  Value MakeMacro(const Node& node, const ScopePtr& defining_scope) {
    const Node* macro = &node;
    // Weak: the macro is stored in the scope it was defined in, and a strong pointer back to
    // that scope would be a cycle that is never freed.
    std::weak_ptr<Scope> defining = defining_scope;
    return Value::Callable(node.name, [this, macro, defining](const CallArgs& args) -> Value {
      ScopePtr parent = defining.lock();
      if (parent == nullptr) {
        throw Unsupported("macro " + macro->name + " called after the block that defined it");
      }
      auto scope = std::make_shared<Scope>(std::move(parent));
      const KeywordArgs& params = macro->params;
      if (args.positional.size() > params.size()) {
        throw Unsupported("macro " + macro->name + " called with more arguments (varargs)");
      }
      std::vector<bool> bound(params.size(), false);
      for (size_t i = 0; i < args.positional.size(); ++i) {
        scope->Set(params[i].first, args.positional[i]);
        bound[i] = true;
      }
      for (const auto& [key, value] : args.keyword) {
        size_t i = 0;
        while (i < params.size() && params[i].first != key) ++i;
        if (i == params.size()) {
          throw Unsupported("macro " + macro->name + " called with unknown keyword '" + key +
                            "' (kwargs)");
        }
        if (bound[i]) throw Error("macro '" + macro->name + "' got multiple values for " + key);
        scope->Set(key, value);
        bound[i] = true;
      }
      for (size_t i = 0; i < params.size(); ++i) {
        if (bound[i]) continue;
        scope->Set(params[i].first, params[i].second ? Eval(*params[i].second, scope)
                                                     : Value::Undefined(params[i].first));
      }
      std::string text;
      Exec(macro->body, scope, &text);
      return Value::String(std::move(text));
    });
  }

  CallArgs EvalArgs(const Expr& expr, const ScopePtr& scope) {
    CallArgs args;
    for (size_t i = 1; i < expr.args.size(); ++i) {
      args.positional.push_back(Eval(*expr.args[i], scope));
    }
    for (const auto& [key, value] : expr.kwargs)
      args.keyword.emplace_back(key, Eval(*value, scope));
    return args;
  }

  Value Eval(const Expr& expr, const ScopePtr& scope) {
    try {
      return EvalUnchecked(expr, scope);
    } catch (const Error& e) {
      Fail(expr.line, e.what());
    } catch (const Unsupported& e) {
      throw TrainError(where_ + ": unsupported Jinja construct '" + e.what() + "' at line " +
                       std::to_string(expr.line));
    } catch (const Raised& e) {
      RaiseFromTemplate(expr.line, e.what());
    }
  }

  Value EvalUnchecked(const Expr& expr, const ScopePtr& scope) {
    switch (expr.kind) {
      case Expr::Kind::kLiteral:
        return expr.value;
      case Expr::Kind::kName: {
        const Value* value = scope->Find(expr.name);
        return value != nullptr ? *value : Value::Undefined(expr.name);
      }
      case Expr::Kind::kList:
      case Expr::Kind::kTuple: {
        Value::Items items;
        for (const auto& item : expr.args) items.push_back(Eval(*item, scope));
        return Value::List(std::move(items), expr.kind == Expr::Kind::kTuple);
      }
      case Expr::Kind::kDict: {
        Value::Entries entries;
        for (size_t i = 0; i + 1 < expr.args.size(); i += 2) {
          Value key = Eval(*expr.args[i], scope);
          Value value = Eval(*expr.args[i + 1], scope);
          bool replaced = false;
          for (auto& entry : entries) {
            if (Equal(entry.first, key)) {
              entry.second = value;
              replaced = true;
            }
          }
          if (!replaced) entries.emplace_back(std::move(key), std::move(value));
        }
        return Value::Dict(std::move(entries));
      }
      case Expr::Kind::kGetAttr:
        return GetAttribute(Eval(*expr.args[0], scope), expr.name);
      case Expr::Kind::kGetItem:
        return GetItem(Eval(*expr.args[0], scope), Eval(*expr.args[1], scope));
      case Expr::Kind::kSlice: {
        const Value object = Eval(*expr.args[0], scope);
        Value bounds[3];
        const Value* pointers[3] = {nullptr, nullptr, nullptr};
        for (int i = 0; i < 3; ++i) {
          if (expr.args[1 + i]) {
            bounds[i] = Eval(*expr.args[1 + i], scope);
            pointers[i] = &bounds[i];
          }
        }
        return Slice(object, pointers[0], pointers[1], pointers[2]);
      }
      case Expr::Kind::kCall: {
        const Value callee = Eval(*expr.args[0], scope);
        const CallArgs args = EvalArgs(expr, scope);
        if (callee.is_undefined()) {
          throw Error("'" + callee.name() + "' is undefined");
        }
        if (callee.type() != Value::Type::kFunction) {
          throw Error("'" + callee.TypeName() + "' object is not callable");
        }
        return callee.function()(args);
      }
      case Expr::Kind::kFilter: {
        const Value operand = Eval(*expr.args[0], scope);
        return ApplyFilter(expr.name, operand, EvalArgs(expr, scope));
      }
      case Expr::Kind::kTest: {
        const Value operand = Eval(*expr.args[0], scope);
        return Value::Bool(ApplyTest(expr.name, operand, EvalArgs(expr, scope)) != expr.negated);
      }
      case Expr::Kind::kNegate:
      case Expr::Kind::kPlus: {
        const Value operand = Eval(*expr.args[0], scope);
        if (!operand.is_number()) {
          throw Error("bad operand type for unary " +
                      std::string(expr.kind == Expr::Kind::kNegate ? "-" : "+") + ": '" +
                      operand.TypeName() + "'");
        }
        if (expr.kind == Expr::Kind::kPlus) {
          return operand.type() == Value::Type::kBool ? Value::Int(operand.int_value()) : operand;
        }
        if (operand.type() == Value::Type::kFloat) return Value::Float(-operand.float_value());
        return BinaryOp("-", Value::Int(0), Value::Int(operand.int_value()));
      }
      case Expr::Kind::kNot:
        return Value::Bool(!Truthy(Eval(*expr.args[0], scope)));
      case Expr::Kind::kAnd: {
        Value left = Eval(*expr.args[0], scope);
        return Truthy(left) ? Eval(*expr.args[1], scope) : left;
      }
      case Expr::Kind::kOr: {
        Value left = Eval(*expr.args[0], scope);
        return Truthy(left) ? left : Eval(*expr.args[1], scope);
      }
      case Expr::Kind::kCompare: {
        Value left = Eval(*expr.args[0], scope);
        for (size_t i = 0; i < expr.ops.size(); ++i) {
          Value right = Eval(*expr.args[i + 1], scope);
          const std::string& op = expr.ops[i];
          bool result = false;
          if (op == "in" || op == "notin") {
            result = Contains(right, left) == (op == "in");
          } else if (op == "==" || op == "!=") {
            result = Equal(left, right) == (op == "==");
          } else {
            if (left.is_undefined() || right.is_undefined()) {
              throw Error("'" + (left.is_undefined() ? left : right).name() + "' is undefined");
            }
            const bool swap = op == ">" || op == "<=";
            const std::optional<bool> less = swap ? Less(right, left) : Less(left, right);
            if (!less) {
              throw Error("'" + op + "' not supported between instances of '" + left.TypeName() +
                          "' and '" + right.TypeName() + "'");
            }
            result = (op == "<" || op == ">") ? *less : !*less;
          }
          if (!result) return Value::Bool(false);
          left = std::move(right);
        }
        return Value::Bool(true);
      }
      case Expr::Kind::kCondExpr:
        if (Truthy(Eval(*expr.args[0], scope))) return Eval(*expr.args[1], scope);
        return expr.args[2] ? Eval(*expr.args[2], scope) : Value::Undefined("conditional");
      case Expr::Kind::kBinary:
        return BinaryOp(expr.name, Eval(*expr.args[0], scope), Eval(*expr.args[1], scope));
    }
    return Value();
  }

  const std::string& where_;
  const std::string& source_;  // for RaiseFromTemplate
};

}  // namespace

JinjaTemplate::JinjaTemplate(const std::string& source, std::string where)
    : where_(std::move(where)), source_(source), body_(ParseTemplate(source, where_)) {}

std::string JinjaTemplate::Render(const Variables& variables) const {
  auto scope = std::make_shared<Scope>(MakeGlobals());
  for (const auto& [name, value] : variables) scope->Set(name, value);
  std::string out;
  Renderer(where_, source_).Exec(body_, scope, &out);
  return out;
}

}  // namespace tuneledger::train::jinja
