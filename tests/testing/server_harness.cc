#include "tests/testing/server_harness.h"

#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "base/status_macros.h"
#include "nlohmann/json.hpp"

namespace tuneledger::testing {
namespace {

namespace fs = std::filesystem;

// Reads the ready file if it is complete (the server renames it into place, so it is either
// absent or whole).
absl::StatusOr<nlohmann::json> ReadReadyFile(const std::string& path) {
  TL_ASSIGN_OR_RETURN(const std::string text, ReadFile(path));
  nlohmann::json json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object() || !json.contains("grpc") ||
      !json["grpc"].is_string() || !json.contains("worker") || !json["worker"].is_string() ||
      !json.contains("metrics") || !json["metrics"].is_string()) {
    return absl::InternalError(
        absl::StrCat("ready file ", path, " is not the contract's JSON: ", text));
  }
  return json;
}

}  // namespace

std::string BinaryPath(const std::string& name) {
  return absl::StrCat(TUNELEDGER_BIN_DIR, "/", name);
}

std::string CommandResult::ToString() const {
  return absl::StrCat(status.ToString(), "\n--- stdout ---\n", stdout_text, "\n--- stderr ---\n",
                      stderr_text);
}

absl::Status WriteFile(const std::string& path, const std::string& contents) {
  std::error_code error;
  const fs::path parent = fs::path(path).parent_path();
  if (!parent.empty()) fs::create_directories(parent, error);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << contents;
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

ServerHarness::ServerHarness(ServerHarnessOptions options)
    : options_(std::move(options)), db_path_(temp_dir_.File("server.db")) {}

ServerHarness::~ServerHarness() {
  if (process_ != nullptr) process_->Terminate(absl::Seconds(10));
  process_.reset();
}

int ServerHarness::pid() const { return process_ != nullptr ? process_->pid() : -1; }

std::string ServerHarness::LogTail(size_t max_bytes) const {
  absl::StatusOr<std::string> log = ReadFile(log_path());
  if (!log.ok()) return "(no server log)";
  if (log->size() <= max_bytes) return *log;
  return absl::StrCat("...", log->substr(log->size() - max_bytes));
}

absl::Status ServerHarness::Start(Port port) {
  if (process_ != nullptr) return absl::FailedPreconditionError("the server already runs");
  std::string listen = "127.0.0.1:0";
  std::string worker_listen = "127.0.0.1:0";
  if (port == Port::kSameGrpcPort) {
    if (grpc_address_.empty()) {
      return absl::FailedPreconditionError("kSameGrpcPort needs an earlier Start()");
    }
    listen = grpc_address_;
    worker_listen = worker_address_;
  }
  const std::string ready_file = absl::StrCat(temp_dir_.path(), "/ready-", ++starts_, ".json");
  ChildProcessOptions child;
  child.argv = {
      options_.server_binary.empty() ? BinaryPath("tuneledger-server") : options_.server_binary,
      "--listen",
      listen,
      "--worker-listen",
      worker_listen,
      "--metrics-listen",
      "127.0.0.1:0",
      "--db",
      db_path_,
      "--ready-file",
      ready_file};
  for (const std::string& root : options_.data_roots) {
    child.argv.push_back("--data-root");
    child.argv.push_back(root);
  }
  if (!options_.worker_token.empty()) {
    const std::string tokens_file = temp_dir_.File("worker-tokens.txt");
    TL_RETURN_IF_ERROR(
        WriteFile(tokens_file, absl::StrCat(options_.worker_token, " test-workers worker\n")));
    child.argv.push_back("--tokens-file");
    child.argv.push_back(tokens_file);
  }
  child.argv.insert(child.argv.end(), options_.extra_args.begin(), options_.extra_args.end());
  child.env = options_.env;
  child.cwd = temp_dir_.path();
  child.stdout_mode = StdioMode::kFile;
  child.stdout_path = log_path();
  child.stderr_mode = StdioMode::kFile;
  child.stderr_path = log_path();
  // A test binary that dies must not leave servers behind.
  child.parent_death_signal = SIGKILL;
  TL_ASSIGN_OR_RETURN(process_, ChildProcess::Start(child));

  const absl::Time deadline = absl::Now() + options_.ready_timeout;
  while (true) {
    absl::StatusOr<nlohmann::json> ready = ReadReadyFile(ready_file);
    if (ready.ok()) {
      grpc_address_ = (*ready)["grpc"].get<std::string>();
      worker_address_ = (*ready)["worker"].get<std::string>();
      metrics_address_ = (*ready)["metrics"].get<std::string>();
      return absl::OkStatus();
    }
    if (ready.status().code() != absl::StatusCode::kNotFound) return ready.status();
    if (std::optional<ExitStatus> ended = process_->TryWait(); ended.has_value()) {
      process_.reset();
      return absl::InternalError(
          absl::StrCat("tuneledger-server ended before it was ready (", ended->ToString(), "); ",
                       absl::StrJoin(child.argv, " "), "\n--- server log ---\n", LogTail()));
    }
    if (absl::Now() > deadline) {
      process_->Terminate(absl::Seconds(2));
      process_.reset();
      return absl::DeadlineExceededError(absl::StrCat(
          "tuneledger-server wrote no ready file within ",
          absl::FormatDuration(options_.ready_timeout), "\n--- server log ---\n", LogTail()));
    }
    absl::SleepFor(absl::Milliseconds(10));  // polling the file system for the ready file
  }
}

absl::Status ServerHarness::Kill() {
  if (process_ == nullptr) return absl::FailedPreconditionError("the server does not run");
  TL_RETURN_IF_ERROR(process_->Signal(SIGKILL));
  TL_RETURN_IF_ERROR(process_->Wait(absl::Seconds(30)).status());
  process_.reset();
  return absl::OkStatus();
}

absl::StatusOr<ExitStatus> ServerHarness::Stop(absl::Duration grace) {
  if (process_ == nullptr) return absl::FailedPreconditionError("the server does not run");
  ExitStatus status = process_->Terminate(grace);
  process_.reset();
  return status;
}

std::vector<std::string> ServerHarness::TunectlArgv(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {
      options_.tunectl_binary.empty() ? BinaryPath("tunectl") : options_.tunectl_binary, "--server",
      grpc_address_};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

absl::StatusOr<CommandResult> ServerHarness::RunTunectl(
    const std::vector<std::string>& args, absl::Duration timeout,
    const std::map<std::string, std::string>& env, const std::string& cwd) const {
  ChildProcessOptions child;
  child.argv = TunectlArgv(args);
  child.unset_env = {"TUNELEDGER_SERVER", "TUNELEDGER_TOKEN", "TUNELEDGER_TLS_CA"};
  child.env = env;
  child.cwd = cwd.empty() ? temp_dir_.path() : cwd;
  TL_ASSIGN_OR_RETURN(CompletedProcess done, ChildProcess::RunToCompletion(child, timeout));
  CommandResult result;
  result.status = done.status;
  result.exit_code = done.status.exited ? done.status.code : -1;
  result.stdout_text = std::move(done.stdout_text);
  result.stderr_text = std::move(done.stderr_text);
  return result;
}

absl::StatusOr<std::unique_ptr<ChildProcess>> ServerHarness::StartTunectl(
    const std::vector<std::string>& args, const std::map<std::string, std::string>& env) {
  ChildProcessOptions child;
  child.argv = TunectlArgv(args);
  child.unset_env = {"TUNELEDGER_SERVER", "TUNELEDGER_TOKEN", "TUNELEDGER_TLS_CA"};
  child.env = env;
  child.cwd = temp_dir_.path();
  child.stdout_mode = StdioMode::kPipe;
  child.stderr_mode = StdioMode::kFile;
  child.stderr_path = absl::StrCat(temp_dir_.path(), "/tunectl-", ++tunectl_starts_, ".err");
  child.parent_death_signal = SIGKILL;
  return ChildProcess::Start(child);
}

absl::StatusOr<std::string> LineReader::ReadLine(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    if (size_t newline = buffer_.find('\n'); newline != std::string::npos) {
      std::string line = buffer_.substr(0, newline);
      buffer_.erase(0, newline + 1);
      return line;
    }
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return absl::DeadlineExceededError(absl::StrCat(
          "no complete line within ", absl::FormatDuration(timeout), "; partial: '", buffer_, "'"));
    }
    pollfd pfd{fd_, POLLIN, 0};
    const int ready = poll(&pfd, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
    if (ready < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError(absl::StrCat("poll: ", std::strerror(errno)));
    }
    if (ready == 0) continue;  // the deadline check above ends the loop
    char chunk[4096];
    const ssize_t n = read(fd_, chunk, sizeof(chunk));
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return absl::InternalError(absl::StrCat("read: ", std::strerror(errno)));
    }
    if (n == 0) return absl::OutOfRangeError(absl::StrCat("end of file; partial: '", buffer_, "'"));
    buffer_.append(chunk, static_cast<size_t>(n));
  }
}

absl::StatusOr<std::string> LineReader::ReadLineContaining(const std::string& text,
                                                           absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  std::string seen;
  while (true) {
    absl::StatusOr<std::string> line =
        ReadLine(std::max(deadline - absl::Now(), absl::ZeroDuration()));
    if (!line.ok()) {
      return absl::Status(line.status().code(),
                          absl::StrCat("no line containing '", text, "' (", line.status().message(),
                                       "); lines read:\n", seen));
    }
    if (line->find(text) != std::string::npos) return *line;
    absl::StrAppend(&seen, *line, "\n");
  }
}

}  // namespace tuneledger::testing
