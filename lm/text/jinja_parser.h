// Jinja source -> syntax tree (jinja_ast.h), lexed the way jinja2 3.1's Lexer does it with the
// options transformers sets for chat templates (trim_blocks=True, lstrip_blocks=True,
// keep_trailing_newline=False):
//   - newlines (\r\n, \r) become \n and one trailing newline is dropped;
//   - {%- / -%} (and {{- -}}, {#- -#}) strip all whitespace before / after the tag;
//   - trim_blocks: the first newline after a block or comment tag is dropped (not after }});
//   - lstrip_blocks: spaces and tabs from the start of a line to a block or comment tag are
//     dropped, unless the tag opens with {%+;
//   - string literals decode Python's escapes (\n, \t, \', \xNN, \uNNNN, ...).
// The parser follows jinja2's grammar and precedence (parser.py): if/elif/else, for (with
// tuple targets, an `if` filter, else), set (name, tuple, ns.attr, block), macro, break,
// continue (transformers enables loopcontrols) and generation (transformers' AssistantTracker
// tag, rendered as its body). Any other tag, and any filter or test not in jinja_builtins.h, is
// a TrainError "<where>: unsupported Jinja construct 'X' at line L" at parse time; malformed
// syntax is "<where>: syntax error at line L: ...".
//
// Thread safety: pure function.
#ifndef TUNELEDGER_LM_TEXT_JINJA_PARSER_H_
#define TUNELEDGER_LM_TEXT_JINJA_PARSER_H_

#include <string>

#include "lm/text/jinja_ast.h"

namespace tuneledger::train::jinja {

// `where` names the template's source in errors, e.g. "<model>/tokenizer_config.json:
// chat_template".
Body ParseTemplate(const std::string& source, const std::string& where);

}  // namespace tuneledger::train::jinja

#endif  // TUNELEDGER_LM_TEXT_JINJA_PARSER_H_
