#include "client/help_text.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "client/exit_codes.h"

namespace tuneledger::client {
namespace {

constexpr size_t kHelpWidth = 100;

// Appends `text` word-wrapped to kHelpWidth, every line indented by `indent` spaces; the first
// line continues the current line when `first_line_taken` characters are already on it.
void AppendWrapped(std::string& out, absl::string_view text, size_t indent,
                   size_t first_line_taken) {
  size_t column = first_line_taken;
  bool line_empty = true;
  for (absl::string_view word : absl::StrSplit(text, ' ', absl::SkipEmpty())) {
    if (!line_empty && column + 1 + word.size() > kHelpWidth) {
      out += "\n";
      out.append(indent, ' ');
      column = indent;
      line_empty = true;
    }
    if (!line_empty) {
      out += " ";
      ++column;
    }
    out.append(word.data(), word.size());
    column += word.size();
    line_empty = false;
  }
  out += "\n";
}

std::string FlagLabel(const FlagSpec& flag) {
  std::string label = absl::StrCat("--", flag.name);
  if (!flag.value_name.empty()) absl::StrAppend(&label, " ", flag.value_name);
  return label;
}

void AppendFlags(std::string& out, const std::vector<FlagSpec>& flags) {
  size_t label_width = 0;
  for (const FlagSpec& flag : flags) label_width = std::max(label_width, FlagLabel(flag).size());
  label_width = std::min<size_t>(label_width, 26);
  const size_t help_column = 2 + label_width + 2;
  for (const FlagSpec& flag : flags) {
    const std::string label = FlagLabel(flag);
    out += "  ";
    out += label;
    if (label.size() > label_width) {  // a long label gets its own line
      out += "\n";
      out.append(help_column, ' ');
    } else {
      out.append(label_width - label.size() + 2, ' ');
    }
    AppendWrapped(out, flag.help, help_column, help_column);
  }
}

std::string UsageLine(const CommandSpec& command) {
  std::string usage = absl::StrCat("tunectl [GLOBAL FLAGS] ", command.name);
  if (!command.positional.empty()) absl::StrAppend(&usage, " ", command.positional);
  if (command.name == "submit" || command.name == "estimate") {
    absl::StrAppend(&usage, " --model DIR --train FILE");
  }
  if (!command.flags.empty()) absl::StrAppend(&usage, " [FLAGS]");
  return usage;
}

}  // namespace

std::string MainHelp() {
  std::string out =
      "tunectl: the command-line client of tuneledger (LoRA fine-tuning with live cost "
      "accounting)\n\n"
      "Usage: tunectl [--server HOST:PORT] [--token T] [--tls-ca FILE] [--output table|json] "
      "COMMAND [ARGS]\n\n"
      "Commands:\n";
  size_t name_width = 0;
  for (const CommandSpec& command : CommandSpecs()) {
    std::string head = std::string(command.name);
    if (!command.positional.empty()) absl::StrAppend(&head, " ", command.positional);
    name_width = std::max(name_width, head.size());
  }
  for (const CommandSpec& command : CommandSpecs()) {
    std::string head = std::string(command.name);
    if (!command.positional.empty()) absl::StrAppend(&head, " ", command.positional);
    absl::StrAppend(&out, "  ", head, std::string(name_width - head.size() + 2, ' '),
                    command.summary, "\n");
  }
  out += "\nGlobal flags (before or after the command):\n";
  AppendFlags(out, GlobalFlagSpecs());
  out += "\nRun 'tunectl COMMAND --help' for the flags of a command.\n\n";
  out += ExitCodeHelp();
  return out;
}

std::string CommandHelp(const CommandSpec& command) {
  std::string out = absl::StrCat("tunectl ", command.name, ": ", command.summary, "\n\n",
                                 "Usage: ", UsageLine(command), "\n\n");
  AppendWrapped(out, command.description, 0, 0);
  if (!command.flags.empty()) {
    out += "\nFlags:\n";
    AppendFlags(out, command.flags);
  }
  out += "\nGlobal flags (before or after the command):\n";
  AppendFlags(out, GlobalFlagSpecs());
  if (command.name == "watch" || command.name == "submit") {
    out += "\n";
    out += ExitCodeHelp();
  }
  return out;
}

}  // namespace tuneledger::client
