#include "client/cli_args.h"

#include <cstdlib>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
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

// Applies one global flag to the command line.
absl::Status ApplyGlobalFlag(absl::string_view name, const std::string& value, CommandLine& out) {
  if (name == "server") {
    if (value.empty()) return UsageError("--server: needs HOST:PORT, got an empty value");
    out.server = value;
  } else if (name == "token") {
    out.token = value;
  } else if (name == "output") {
    if (value == "table") {
      out.output = OutputFormat::kTable;
    } else if (value == "json") {
      out.output = OutputFormat::kJson;
    } else {
      return UsageError(absl::StrCat("--output: must be table or json, got '", value, "'"));
    }
  } else if (name == "timeout") {
    double seconds = 0;
    if (!absl::SimpleAtod(value, &seconds) || !(seconds > 0)) {
      return UsageError(
          absl::StrCat("--timeout: must be a number of seconds > 0, got '", value, "'"));
    }
    out.timeout = absl::Seconds(seconds);
  } else if (name == "help") {
    out.help = value != "false" && value != "0";
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
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "-h") {
      line.help = true;
      continue;
    }
    if (!absl::StartsWith(arg, "--")) {
      if (absl::StartsWith(arg, "-") && arg.size() > 1) {
        return UsageError(absl::StrCat("unknown flag '", arg, "' (flags are spelled --name)"));
      }
      if (command == nullptr) {
        command = FindCommand(arg);
        if (command == nullptr) {
          return UsageError(
              absl::StrCat("unknown command '", arg, "' (commands: ", CommandNames(), ")"));
        }
        line.command = std::string(command->name);
      } else {
        line.positionals.push_back(arg);
      }
      continue;
    }

    absl::string_view body = absl::string_view(arg).substr(2);
    std::optional<std::string> inline_value;
    if (size_t eq = body.find('='); eq != absl::string_view::npos) {
      inline_value = std::string(body.substr(eq + 1));
      body = body.substr(0, eq);
    }
    bool is_global = true;
    const FlagSpec* flag = FindFlag(GlobalFlagSpecs(), body);
    if (flag == nullptr && command != nullptr) {
      flag = FindFlag(command->flags, body);
      is_global = false;
    }
    if (flag == nullptr) {
      if (command == nullptr) {
        return UsageError(
            absl::StrCat("unknown flag --", body, " (command flags go after the command)"));
      }
      return UsageError(absl::StrCat(command->name, ": unknown flag --", body));
    }

    std::string value;
    if (flag->value_name.empty()) {  // a switch
      value = inline_value.value_or("true");
      if (value != "true" && value != "false" && value != "1" && value != "0") {
        return UsageError(
            absl::StrCat("--", flag->name, ": is a switch; give it alone or =true/=false"));
      }
      if (value == "1") value = "true";
      if (value == "0") value = "false";
    } else if (inline_value.has_value()) {
      value = *inline_value;
    } else {
      if (i + 1 >= args.size()) {
        return UsageError(
            absl::StrCat("--", flag->name, ": needs a value (", flag->value_name, ")"));
      }
      value = args[++i];
    }

    if (is_global) {
      absl::Status status = ApplyGlobalFlag(flag->name, value, line);
      if (!status.ok()) return status;
    } else {
      line.flags.Add(flag->name, std::move(value));
    }
  }

  if (line.help) {
    // `tunectl --help` / `tunectl submit --help`: nothing else needs to be complete.
    return line;
  }
  if (command == nullptr) {
    return UsageError(absl::StrCat("no command given (commands: ", CommandNames(), ")"));
  }
  absl::Status status = CheckPositionals(*command, line);
  if (!status.ok()) return status;
  return line;
}

Environment ReadEnvironment() {
  Environment env;
  if (const char* server = std::getenv("TUNELEDGER_SERVER"); server != nullptr) {
    env.server = server;
  }
  if (const char* token = std::getenv("TUNELEDGER_TOKEN"); token != nullptr) env.token = token;
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

}  // namespace tuneledger::client
