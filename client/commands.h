// RunCommand: runs one parsed tunectl command against a server and writes its output.
// Returns the process exit code (exit_codes.h). Errors are one line on `err`:
//   tunectl: submit: INVALID_ARGUMENT: spec.training.learning_rate: must be > 0, got -1
// Thread safety: one call per CommandEnvironment at a time (it writes to its streams).
#ifndef TUNELEDGER_CLIENT_COMMANDS_H_
#define TUNELEDGER_CLIENT_COMMANDS_H_

#include <functional>
#include <ostream>
#include <string>

#include "client/cli_args.h"
#include "client/job_client.h"

namespace tuneledger::client {

struct CommandEnvironment {
  JobClient* client = nullptr;
  std::ostream* out = nullptr;
  std::ostream* err = nullptr;
  std::string cwd;                         // relative paths in submit are resolved against it
  bool out_is_terminal = false;            // watch draws a live progress bar only on a terminal
  std::function<size_t()> terminal_width;  // columns of that terminal
};

int RunCommand(const CommandLine& command_line, const CommandEnvironment& env);

}  // namespace tuneledger::client

#endif  // TUNELEDGER_CLIENT_COMMANDS_H_
