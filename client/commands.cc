#include "client/commands.h"

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/exit_codes.h"
#include "client/output_render.h"
#include "client/spec_builder.h"
#include "client/watch_loop.h"
#include "client/watch_renderer.h"

namespace tuneledger::client {
namespace {

using tuneledger::v1::Job;

// UNAVAILABLE is what gRPC answers for a server that is not there; its text ("failed to
// connect to all addresses; last error: UNKNOWN: ipv4:...: Connection refused") names neither
// the address tunectl chose nor what to do. Says both, keeping the cause (the part after the
// last ": ").
int ReportUnreachable(const CommandEnvironment& env, const std::string& command,
                      const absl::Status& status) {
  const std::string address = env.client->options().address;
  absl::string_view cause = status.message();
  if (const size_t colon = cause.rfind(": "); colon != absl::string_view::npos) {
    cause = cause.substr(colon + 2);
  }
  *env.err << "tunectl: " << command << ": cannot reach tuneledger-server at " << address << " ("
           << cause << ")\n"
           << "Start one (tuneledger-server --listen " << address
           << " --db FILE), or point tunectl at a running server with --server HOST:PORT or "
              "TUNELEDGER_SERVER=HOST:PORT; a server that serves TLS needs --tls-ca FILE.\n";
  return kExitError;
}

// "tunectl: get: NOT_FOUND: job 42 not found"
int ReportError(const CommandEnvironment& env, const std::string& command,
                const absl::Status& status, ExitCode code = kExitError) {
  if (status.code() == absl::StatusCode::kUnavailable) {
    return ReportUnreachable(env, command, status);
  }
  *env.err << "tunectl: " << command << ": " << absl::StatusCodeToString(status.code()) << ": "
           << status.message() << "\n";
  return code;
}

int ReportUsageError(const CommandEnvironment& env, const std::string& command,
                     const absl::Status& status) {
  *env.err << "tunectl: " << command << ": " << status.message() << "\n"
           << "Run 'tunectl " << command << " --help' for usage.\n";
  return kExitUsage;
}

absl::StatusOr<std::vector<Job::State>> ParseStates(const std::vector<std::string>& values) {
  std::vector<Job::State> states;
  for (const std::string& value : values) {
    for (absl::string_view item : absl::StrSplit(value, ',', absl::SkipEmpty())) {
      Job::State state;
      if (!Job::State_Parse(absl::AsciiStrToUpper(absl::StripAsciiWhitespace(item)), &state) ||
          state == Job::STATE_UNSPECIFIED) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--state: must be queued, running, succeeded, failed or cancelled, got '", item, "'"));
      }
      states.push_back(state);
    }
  }
  return states;
}

int Watch(const CommandLine& line, const CommandEnvironment& env, const std::string& job_id) {
  WatchLoopOptions options;
  if (line.flags.Has("reconnect-timeout")) {
    double seconds = 0;
    if (!absl::SimpleAtod(line.flags.Last("reconnect-timeout"), &seconds) || seconds < 0) {
      return ReportUsageError(env, line.command,
                              absl::InvalidArgumentError(absl::StrCat(
                                  "--reconnect-timeout: must be a number of seconds >= 0, got '",
                                  line.flags.Last("reconnect-timeout"), "'")));
    }
    options.reconnect_timeout = absl::Seconds(seconds);
  }
  WatchRenderer::Mode mode = WatchRenderer::Mode::kPlain;
  if (line.output == OutputFormat::kJson) {
    mode = WatchRenderer::Mode::kJson;
  } else if (env.out_is_terminal) {
    mode = WatchRenderer::Mode::kTerminal;
  }
  std::ostream& notices = mode == WatchRenderer::Mode::kJson ? *env.err : *env.out;
  WatchRenderer renderer(mode, *env.out, notices, env.terminal_width);
  absl::StatusOr<Job> job = WatchUntilDone(*env.client, job_id, renderer, options);
  if (!job.ok()) return ReportError(env, "watch", job.status());
  return ExitCodeForFinalState(job->state());
}

// submit's and estimate's spec. Every problem found before the server is asked (a flag value, an
// unreadable --spec file, a missing --model or --train) is the caller's to fix: a usage error
// (its exit code in *exit_code).
std::optional<tuneledger::v1::JobSpec> SpecFromFlags(const CommandLine& line,
                                                     const CommandEnvironment& env,
                                                     int* exit_code) {
  absl::StatusOr<tuneledger::v1::JobSpec> spec = BuildJobSpec(line.flags, env.cwd);
  absl::Status local = spec.status();
  if (local.ok()) local = CheckSubmitHasInputs(*spec);
  if (local.ok()) return *std::move(spec);
  *exit_code = local.code() == absl::StatusCode::kInvalidArgument
                   ? ReportUsageError(env, line.command, local)
                   : ReportError(env, line.command, local);
  return std::nullopt;
}

// `tunectl estimate` and `tunectl submit --dry-run`.
int Estimate(const CommandLine& line, const CommandEnvironment& env) {
  int exit_code = kExitOk;
  const std::optional<tuneledger::v1::JobSpec> spec = SpecFromFlags(line, env, &exit_code);
  if (!spec.has_value()) return exit_code;
  absl::StatusOr<tuneledger::v1::JobEstimate> estimate = env.client->Estimate(*spec);
  if (!estimate.ok()) return ReportError(env, line.command, estimate.status());
  *env.out << RenderEstimate(*estimate, line.output);
  return kExitOk;
}

int Submit(const CommandLine& line, const CommandEnvironment& env) {
  if (line.flags.Last("dry-run") == "true") {
    if (line.flags.Last("wait") == "true") {
      return ReportUsageError(
          env, line.command,
          absl::InvalidArgumentError("--wait: a --dry-run submits nothing to wait for"));
    }
    return Estimate(line, env);
  }
  int exit_code = kExitOk;
  const std::optional<tuneledger::v1::JobSpec> spec = SpecFromFlags(line, env, &exit_code);
  if (!spec.has_value()) return exit_code;
  absl::StatusOr<tuneledger::v1::SubmitJobResponse> response = env.client->Submit(*spec);
  if (!response.ok()) return ReportError(env, line.command, response.status());
  *env.out << RenderSubmitted(*response, line.output);
  env.out->flush();
  // On stderr: stdout keeps the id alone (ID=$(tunectl submit ...)); json carries the estimate.
  if (line.output == OutputFormat::kTable && response->has_estimate()) {
    *env.err << RenderSubmittedEstimate(response->estimate());
  }
  if (response->deduplicated()) {
    *env.err << "tunectl: submit: request id '" << spec->client_request_id()
             << "' was submitted before; this is that job\n";
  }
  if (line.flags.Last("wait") == "true") return Watch(line, env, response->job().id());
  return kExitOk;
}

// Prints a value or reports its error.
template <typename T, typename Render>
int Print(const CommandEnvironment& env, const std::string& command,
          const absl::StatusOr<T>& result, Render render) {
  if (!result.ok()) return ReportError(env, command, result.status());
  *env.out << render(*result);
  return kExitOk;
}

}  // namespace

int RunCommand(const CommandLine& line, const CommandEnvironment& env) {
  const std::string& command = line.command;
  const std::string id = line.positionals.empty() ? "" : line.positionals[0];
  const OutputFormat format = line.output;
  JobClient& client = *env.client;

  if (command == "submit") return Submit(line, env);
  if (command == "estimate") return Estimate(line, env);
  if (command == "watch") return Watch(line, env, id);
  if (command == "list") {
    absl::StatusOr<std::vector<Job::State>> states = ParseStates(line.flags.All("state"));
    if (!states.ok()) return ReportUsageError(env, command, states.status());
    int page_size = 0;
    if (line.flags.Has("page-size") &&
        (!absl::SimpleAtoi(line.flags.Last("page-size"), &page_size) || page_size <= 0)) {
      return ReportUsageError(
          env, command,
          absl::InvalidArgumentError(absl::StrCat("--page-size: must be an integer > 0, got '",
                                                  line.flags.Last("page-size"), "'")));
    }
    return Print(env, command, client.ListAll(*states, page_size),
                 [format](const std::vector<Job>& jobs) { return RenderJobList(jobs, format); });
  }
  if (command == "get") {
    return Print(env, command, client.Get(id),
                 [format](const Job& job) { return RenderJob(job, format); });
  }
  if (command == "cancel") {
    return Print(env, command, client.Cancel(id, line.flags.Last("message")),
                 [format](const Job& job) { return RenderCancelled(job, format); });
  }
  if (command == "events") {
    return Print(env, command, client.ListEvents(id),
                 [format](const std::vector<tuneledger::v1::JobEvent>& events) {
                   return RenderEvents(events, format);
                 });
  }
  if (command == "history") {
    return Print(env, command, client.GetProgressHistory(id),
                 [format](const tuneledger::v1::ProgressHistory& history) {
                   return RenderProgressHistory(history, format);
                 });
  }
  if (command == "cost") {
    const bool card = line.flags.Last("card") == "true";
    return Print(env, command, client.GetCostReport(id),
                 [format, card](const tuneledger::v1::CostReport& report) {
                   // The card verbatim: the same Markdown as the adapter's COST.md.
                   return card ? report.card_markdown() : RenderCostReport(report, format);
                 });
  }
  if (command == "pareto") {
    absl::StatusOr<std::map<std::string, std::string>> labels = ParseLabelFlags(line.flags);
    if (!labels.ok()) return ReportUsageError(env, command, labels.status());
    return Print(env, command, client.GetParetoFront(*labels),
                 [format](const tuneledger::v1::ParetoFront& front) {
                   return RenderParetoFront(front, format);
                 });
  }
  if (command == "workers") {
    return Print(env, command, client.ListWorkers(),
                 [format](const std::vector<tuneledger::v1::Worker>& workers) {
                   return RenderWorkers(workers, format);
                 });
  }
  *env.err << "tunectl: command '" << command << "' is not implemented\n";
  return kExitUsage;
}

}  // namespace tuneledger::client
