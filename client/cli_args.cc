#include "client/cli_args.h"

#include <cstdlib>
#include <optional>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/command_line.h"
#include "base/status_macros.h"
#include "client/command_table.h"

namespace tuneledger::client {
namespace {

absl::Status UsageError(std::string message) {
  return absl::InvalidArgumentError(std::move(message));
}

std::string CommandNames() {
  std::vector<absl::string_view> names;
  for (const CommandSpec& command : CommandSpecs()) names.push_back(command.name);
  return absl::StrJoin(names, ", ");
}

// Applies one global flag to the command line; a problem is spelled without the "--name: "
// that base/command_line.h puts in front.
absl::Status ApplyGlobalFlag(absl::string_view name, const std::string& value, CommandLine& out) {
  if (name == "server") {
    if (value.empty()) return UsageError("needs HOST:PORT, got an empty value");
    out.server = value;
  } else if (name == "token") {
    out.token = value;
  } else if (name == "tls-ca") {
    if (value.empty()) return UsageError("needs a PEM file, got an empty value");
    out.tls_ca = value;
  } else if (name == "output") {
    if (value == "table") {
      out.output = OutputFormat::kTable;
    } else if (value == "json") {
      out.output = OutputFormat::kJson;
    } else {
      return UsageError(absl::StrCat("must be table or json, got '", value, "'"));
    }
  } else if (name == "timeout") {
    double seconds = 0;
    if (!absl::SimpleAtod(value, &seconds) || !(seconds > 0)) {
      return UsageError(absl::StrCat("must be a number of seconds > 0, got '", value, "'"));
    }
    out.timeout = absl::Seconds(seconds);
  } else if (name == "help") {
    out.help = value == "true";
  }
  return absl::OkStatus();
}

absl::Status CheckPositionals(const CommandSpec& command, const CommandLine& line) {
  const size_t count = line.positionals.size();
  if (command.positional == "ID") {
    if (count == 0) {
      return UsageError(
          absl::StrCat(command.name, ": missing the job ID (tunectl ", command.name, " ID)"));
    }
    if (count > 1) {
      return UsageError(absl::StrCat(command.name, ": takes one job ID, got ", count, ": ",
                                     absl::StrJoin(line.positionals, " ")));
    }
  } else if (command.positional == "[COMMAND]") {
    if (count > 1) return UsageError("help: takes at most one command name");
    if (count == 1 && FindCommand(line.positionals[0]) == nullptr) {
      return UsageError(absl::StrCat("help: unknown command '", line.positionals[0],
                                     "' (commands: ", CommandNames(), ")"));
    }
  } else if (count > 0) {
    return UsageError(
        absl::StrCat(command.name, ": unexpected argument '", line.positionals[0], "'"));
  }
  return absl::OkStatus();
}

}  // namespace

void FlagValues::Add(absl::string_view name, std::string value) {
  values_[std::string(name)].push_back(std::move(value));
}

bool FlagValues::Has(absl::string_view name) const { return values_.find(name) != values_.end(); }

std::string FlagValues::Last(absl::string_view name) const {
  auto it = values_.find(name);
  if (it == values_.end() || it->second.empty()) return "";
  return it->second.back();
}

std::vector<std::string> FlagValues::All(absl::string_view name) const {
  auto it = values_.find(name);
  if (it == values_.end()) return {};
  return it->second;
}

absl::StatusOr<CommandLine> ParseCommandLine(const std::vector<std::string>& args) {
  CommandLine line;
  const CommandSpec* command = nullptr;
  // The global flags, then (after the command word) the command's own.
  // (Debian's Abseil has its own string_view, not std::string_view.)
  auto find_flag = [&](std::string_view std_name, bool* is_global) -> const FlagSpec* {
    const absl::string_view name(std_name.data(), std_name.size());
    *is_global = true;
    if (const FlagSpec* flag = FindFlag(GlobalFlagSpecs(), name)) return flag;
    *is_global = false;
    return command != nullptr ? FindFlag(command->flags, name) : nullptr;
  };
  CommandLineHandlers handlers;
  handlers.kind = [&](std::string_view name) -> std::optional<FlagKind> {
    bool is_global = false;
    const FlagSpec* flag = find_flag(name, &is_global);
    if (flag == nullptr) return std::nullopt;
    return flag->value_name.empty() ? FlagKind::kSwitch : FlagKind::kValue;
  };
  handlers.unknown_flag = [&](std::string_view name) {
    if (command == nullptr) {
      return absl::StrCat("unknown flag --", std::string(name),
                          " (command flags go after the command)");
    }
    return absl::StrCat(command->name, ": unknown flag --", std::string(name));
  };
  handlers.apply = [&](std::string_view name, const std::string& value) -> std::string {
    bool is_global = false;
    const FlagSpec* flag = find_flag(name, &is_global);
    if (!is_global) {
      line.flags.Add(flag->name, value);
      return "";
    }
    const absl::Status status = ApplyGlobalFlag(flag->name, value, line);
    return status.ok() ? "" : std::string(status.message());
  };
  handlers.positional = [&](const std::string& arg) -> std::string {
    if (command != nullptr) {
      line.positionals.push_back(arg);
      return "";
    }
    command = FindCommand(arg);
    if (command == nullptr) {
      return absl::StrCat("unknown command '", arg, "' (commands: ", CommandNames(), ")");
    }
    line.command = std::string(command->name);
    return "";
  };
  if (const std::string problem = ::tuneledger::ParseCommandLine(args, handlers);
      !problem.empty()) {
    return UsageError(problem);
  }

  if (line.help) {
    // `tunectl --help` / `tunectl submit --help`: nothing else needs to be complete.
    return line;
  }
  if (command == nullptr) {
    return UsageError(absl::StrCat("no command given (commands: ", CommandNames(), ")"));
  }
  TL_RETURN_IF_ERROR(CheckPositionals(*command, line));
  return line;
}

Environment ReadEnvironment() {
  Environment env;
  if (const char* server = std::getenv("TUNELEDGER_SERVER"); server != nullptr) {
    env.server = server;
  }
  if (const char* token = std::getenv("TUNELEDGER_TOKEN"); token != nullptr) env.token = token;
  if (const char* ca = std::getenv("TUNELEDGER_TLS_CA"); ca != nullptr) env.tls_ca = ca;
  return env;
}

std::string ResolveServerAddress(const CommandLine& command_line, const Environment& env) {
  if (command_line.server.has_value() && !command_line.server->empty()) {
    return *command_line.server;
  }
  if (env.server.has_value() && !env.server->empty()) return *env.server;
  return std::string(kDefaultServer);
}

std::string ResolveToken(const CommandLine& command_line, const Environment& env) {
  if (command_line.token.has_value()) return *command_line.token;
  if (env.token.has_value()) return *env.token;
  return "";
}

std::string ResolveTlsCaFile(const CommandLine& command_line, const Environment& env) {
  if (command_line.tls_ca.has_value() && !command_line.tls_ca->empty()) return *command_line.tls_ca;
  if (env.tls_ca.has_value() && !env.tls_ca->empty()) return *env.tls_ca;
  return "";
}

}  // namespace tuneledger::client
