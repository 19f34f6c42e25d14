// The one command-line parser of the project's executables (tuneledger-server,
// tuneledger-worker, tunectl, tuneledger-train, tuneledger-pretrain).
//
//   --name VALUE   --name=VALUE   a flag that takes a value
//   --name         --name=true|false|1|0   a switch
//   -h             the same as --help
//   anything else  a positional argument (only where the program takes them)
//
// The parser owns the spelling; each program owns its flags through three handlers: which flags
// exist and whether they take a value, what a flag's value does, what a positional does. Every
// problem comes back as one line for the user ("--threads: must be a positive integer, got
// 'x'", "unknown flag --frobnicate (see --help)"); programs print it with their usage and exit
// 2. C++ standard library only: the trainer links no Abseil.
//
// Thread safety: a pure function of its arguments and handlers.
#ifndef TUNELEDGER_BASE_COMMAND_LINE_H_
#define TUNELEDGER_BASE_COMMAND_LINE_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tuneledger {

enum class FlagKind {
  kSwitch,  // --name, or --name=true|false|1|0
  kValue,   // --name VALUE or --name=VALUE
};

struct CommandLineHandlers {
  // The kind of flag `name` (without dashes); nullopt when the program has no such flag.
  std::function<std::optional<FlagKind>(std::string_view name)> kind;
  // Applies flag `name` with `value` ("true" or "false" for a switch). Returns a problem
  // ("must be HOST:PORT, got 'x'"), or "" when the value is fine; the parser prefixes
  // "--name: ".
  std::function<std::string(std::string_view name, const std::string& value)> apply;
  // Takes one positional argument; returns a problem, or "". Empty: the program takes none.
  std::function<std::string(const std::string& arg)> positional;
  // The message for a flag `kind` does not know. Empty: "unknown flag --name (see --help)".
  std::function<std::string(std::string_view name)> unknown_flag;
};

// Parses `args` (argv without argv[0]) in order, calling the handlers. Returns "" or the first
// problem.
std::string ParseCommandLine(const std::vector<std::string>& args,
                             const CommandLineHandlers& handlers);

// argv[1 .. argc-1].
std::vector<std::string> CommandLineArguments(int argc, char** argv);

// Value parsers for the handlers: the whole text must be the number, in [min, max].
std::optional<int64_t> ParseIntFlag(const std::string& text, int64_t min, int64_t max);
std::optional<double> ParseDoubleFlag(const std::string& text, double min, double max);

}  // namespace tuneledger

#endif  // TUNELEDGER_BASE_COMMAND_LINE_H_
