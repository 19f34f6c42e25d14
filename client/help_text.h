// tunectl's --help text, rendered from the command table (command_table.h).
// Thread safety: free functions without shared state.
#ifndef TUNELEDGER_CLIENT_HELP_TEXT_H_
#define TUNELEDGER_CLIENT_HELP_TEXT_H_

#include <string>

#include "client/command_table.h"

namespace tuneledger::client {

// `tunectl --help`: usage, every command with its summary, global flags, exit codes.
std::string MainHelp();
// `tunectl COMMAND --help`: the command's usage, description and every flag.
std::string CommandHelp(const CommandSpec& command);

}  // namespace tuneledger::client

#endif  // TUNELEDGER_CLIENT_HELP_TEXT_H_
