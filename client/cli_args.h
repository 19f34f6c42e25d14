// Parsing of tunectl's command line against the table in command_table.h.
//
//   tunectl [GLOBAL FLAGS] COMMAND [ARGS] [FLAGS and GLOBAL FLAGS in any order]
//
// Flags are `--name VALUE` or `--name=VALUE`; a switch is `--name` (or `--name=true|false`).
// Global flags may come before or after the command; command flags only after it. A flag
// given twice keeps its last value unless it is repeatable. Every problem is an
// INVALID_ARGUMENT whose message is meant for the user (tunectl exits 2 on it).
// Thread safety: free functions without shared state; FlagValues is a plain value.
#ifndef TUNELEDGER_CLIENT_CLI_ARGS_H_
#define TUNELEDGER_CLIENT_CLI_ARGS_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace tuneledger::client {

enum class OutputFormat { kTable, kJson };

// The values of the command's flags, by flag name (without "--").
class FlagValues {
 public:
  void Add(absl::string_view name, std::string value);
  bool Has(absl::string_view name) const;
  // The last value given; empty when the flag was not given.
  std::string Last(absl::string_view name) const;
  // Every value given, in order; empty when the flag was not given.
  std::vector<std::string> All(absl::string_view name) const;

 private:
  std::map<std::string, std::vector<std::string>, std::less<>> values_;
};

struct CommandLine {
  std::optional<std::string> server;  // --server
  std::optional<std::string> token;   // --token
  std::optional<std::string> tls_ca;  // --tls-ca
  OutputFormat output = OutputFormat::kTable;
  absl::Duration timeout = absl::Seconds(30);
  bool help = false;    // --help / -h anywhere
  std::string command;  // empty only when help is set
  std::vector<std::string> positionals;
  FlagValues flags;
};

// `args` excludes argv[0].
absl::StatusOr<CommandLine> ParseCommandLine(const std::vector<std::string>& args);

// What tunectl reads from its environment, read once in main() so the rest stays pure.
struct Environment {
  std::optional<std::string> server;  // $TUNELEDGER_SERVER
  std::optional<std::string> token;   // $TUNELEDGER_TOKEN
  std::optional<std::string> tls_ca;  // $TUNELEDGER_TLS_CA
};
Environment ReadEnvironment();

inline constexpr absl::string_view kDefaultServer = "127.0.0.1:50051";
// --server, else $TUNELEDGER_SERVER, else 127.0.0.1:50051 (empty values count as unset).
std::string ResolveServerAddress(const CommandLine& command_line, const Environment& env);
// --token, else $TUNELEDGER_TOKEN, else empty (no authorization metadata).
std::string ResolveToken(const CommandLine& command_line, const Environment& env);
// --tls-ca, else $TUNELEDGER_TLS_CA, else empty (plaintext); empty values count as unset.
std::string ResolveTlsCaFile(const CommandLine& command_line, const Environment& env);

}  // namespace tuneledger::client

#endif  // TUNELEDGER_CLIENT_CLI_ARGS_H_
