// The table of tunectl's commands and flags: the single source for parsing (cli_args.cc) and
// for --help (help_text.cc), so the two cannot disagree.
// Thread safety: the tables are immutable once built (on first use, thread-safe statics).
#ifndef TUNELEDGER_CLIENT_COMMAND_TABLE_H_
#define TUNELEDGER_CLIENT_COMMAND_TABLE_H_

#include <vector>

#include "absl/strings/string_view.h"

namespace tuneledger::client {

struct FlagSpec {
  absl::string_view name;        // without the leading "--"
  absl::string_view value_name;  // e.g. "DIR"; empty for a switch (--grad-checkpointing)
  absl::string_view help;
  bool repeatable = false;  // every value is kept (--label a=1 --label b=2)
};

struct CommandSpec {
  absl::string_view name;
  // "ID": exactly one job id; "[COMMAND]": at most one command name; empty: none.
  absl::string_view positional;
  absl::string_view summary;      // one line, for the command list
  absl::string_view description;  // a paragraph, for `tunectl COMMAND --help`
  std::vector<FlagSpec> flags;
};

// Flags accepted before or after the command.
const std::vector<FlagSpec>& GlobalFlagSpecs();
// Every command, in the order --help lists them.
const std::vector<CommandSpec>& CommandSpecs();

// nullptr when there is no such command / flag.
const CommandSpec* FindCommand(absl::string_view name);
const FlagSpec* FindFlag(const std::vector<FlagSpec>& flags, absl::string_view name);

}  // namespace tuneledger::client

#endif  // TUNELEDGER_CLIENT_COMMAND_TABLE_H_
