// tunectl: the command-line client of tuneledger. See `tunectl --help` and README.md
// "tunectl". main() only composes: parse, pick the server and token, run the command.
#include <signal.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "base/tls_credentials.h"
#include "client/cli_args.h"
#include "client/command_table.h"
#include "client/commands.h"
#include "client/exit_codes.h"
#include "client/help_text.h"
#include "client/job_client.h"

namespace {

using tuneledger::client::CommandLine;

size_t TerminalWidth() {
  struct winsize size {};
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
  size_t columns = 0;
  if (const char* env = std::getenv("COLUMNS");
      env != nullptr && absl::SimpleAtoi(env, &columns) && columns > 0) {
    return columns;
  }
  return 80;
}

// Ctrl-C during a live progress bar: end the bar's line so the shell prompt starts on its own.
void OnInterrupt(int) {
  const char newline = '\n';
  (void)!write(STDOUT_FILENO, &newline, 1);
  _exit(130);
}

int PrintHelp(const CommandLine& line) {
  std::string topic = line.command;
  if (line.command == "help" && !line.positionals.empty()) topic = line.positionals[0];
  const tuneledger::client::CommandSpec* command = tuneledger::client::FindCommand(topic);
  if (command == nullptr || topic == "help") {
    std::cout << tuneledger::client::MainHelp();
  } else {
    std::cout << tuneledger::client::CommandHelp(*command);
  }
  return tuneledger::client::kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace tuneledger::client;  // NOLINT(build/namespaces): main only composes

  absl::StatusOr<CommandLine> line =
      ParseCommandLine(std::vector<std::string>(argv + 1, argv + argc));
  if (!line.ok()) {
    std::cerr << "tunectl: " << line.status().message() << "\n"
              << "Run 'tunectl --help' for usage.\n";
    return kExitUsage;
  }
  if (line->help || line->command == "help") return PrintHelp(*line);

  const Environment environment = ReadEnvironment();
  JobClient::Options options;
  options.address = ResolveServerAddress(*line, environment);
  options.token = ResolveToken(*line, environment);
  options.deadline = line->timeout;
  absl::StatusOr<tuneledger::TlsClientPem> tls =
      tuneledger::LoadTlsClientFiles(ResolveTlsCaFile(*line, environment), "", "");
  if (!tls.ok()) {
    std::cerr << "tunectl: " << tls.status().message() << "\n";
    return kExitUsage;
  }
  options.tls = *std::move(tls);
  JobClient client(options);

  CommandEnvironment env;
  env.client = &client;
  env.out = &std::cout;
  env.err = &std::cerr;
  std::error_code cwd_error;
  env.cwd = std::filesystem::current_path(cwd_error).string();
  if (cwd_error) {
    std::cerr << "tunectl: cannot read the current directory: " << cwd_error.message() << "\n";
    return kExitError;
  }
  env.out_is_terminal = isatty(STDOUT_FILENO) == 1;
  env.terminal_width = TerminalWidth;

  const bool live_bar = env.out_is_terminal && line->output == OutputFormat::kTable &&
                        (line->command == "watch" || line->flags.Last("wait") == "true");
  if (live_bar) {
    struct sigaction action {};
    action.sa_handler = OnInterrupt;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, nullptr);
  }
  return RunCommand(*line, env);
}
