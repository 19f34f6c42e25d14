// JinjaTemplate: a Jinja template parsed once (jinja_parser.h) and rendered with variables, the
// subset of jinja2 3.1 that Hugging Face chat templates use, with the environment transformers
// builds for them (transformers/utils/chat_template_utils.py: ImmutableSandboxedEnvironment,
// trim_blocks, lstrip_blocks, loopcontrols, its tojson, and the globals raise_exception,
// strftime_now, dict, namespace; plus jinja2's range).
//
// Semantics kept from jinja2: variables set inside a for body live for one iteration (hence
// namespace()), set inside if does not make a scope, undefined variables print as "" and are
// false, and attribute access on an undefined value is an error; `and`/`or` return an operand;
// macros see the variables of the scope that defined them.
//
// Errors are TrainErrors that start with `where`:
//   "<where>: unsupported Jinja construct 'X' at line L"  X outside the subset (parse time for
//                                                          tags, filters and tests)
//   "<where>: syntax error at line L: ..."
//   "<where>: raise_exception at line L: <the template's message>"  (left out unless the
//                                                          template holds it verbatim: one built
//                                                          from the data would quote the data)
//   "<where>: line L: <what Python would raise>"           e.g. "'x' is undefined"
// No error quotes a value the template was given (messages come from a user's data file, and
// errors travel into job messages): values appear by type, names only from the template.
//
// Thread safety: immutable after construction; Render may run on several threads at once.
#ifndef TUNELEDGER_LM_TEXT_JINJA_TEMPLATE_H_
#define TUNELEDGER_LM_TEXT_JINJA_TEMPLATE_H_

#include <string>
#include <utility>
#include <vector>

#include "lm/text/jinja_ast.h"
#include "lm/text/jinja_value.h"

namespace tuneledger::train::jinja {

using Variables = std::vector<std::pair<std::string, Value>>;

class JinjaTemplate {
 public:
  // Parses `source`; throws TrainError naming `where`.
  JinjaTemplate(const std::string& source, std::string where);

  // The template's text for `variables` (they shadow the globals).
  std::string Render(const Variables& variables) const;

  const std::string& where() const { return where_; }

 private:
  std::string where_;
  std::string source_;
  Body body_;
};

}  // namespace tuneledger::train::jinja

#endif  // TUNELEDGER_LM_TEXT_JINJA_TEMPLATE_H_
