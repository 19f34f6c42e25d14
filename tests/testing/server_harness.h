// ServerHarness: runs a real tuneledger-server for integration tests, and runs tunectl (or any
// program) against it.
//
//   ServerHarness server;                       // a fresh temp dir; nothing started yet
//   ASSERT_OK(server.Start());                  // temp db, 127.0.0.1:0 ports, --ready-file
//   absl::StatusOr<CommandResult> r = server.RunTunectl({"list", "--output", "json"});
//   ASSERT_OK(server.Kill());                   // SIGKILL, reaped
//   ASSERT_OK(server.Start());                  // again, on the same db
//
// Start() passes --listen 127.0.0.1:0 --worker-listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0
// --db <temp>/server.db --ready-file <temp>/ready-<n>.json, a --data-root for each
// ServerHarnessOptions::data_roots, --tokens-file naming ServerHarnessOptions::worker_token when
// one is set, then ServerHarnessOptions::extra_args, and waits (with a deadline) for the ready
// file {"grpc":..., "worker":..., "metrics":..., "pid":...}; a server that exits first or misses
// the deadline fails Start() with the tail of its log. The server's stdout and stderr are
// appended to <temp>/server.log. Start(kSameGrpcPort) listens on the gRPC and worker ports of the
// previous run, so a client or worker that was connected finds the restarted server.
//
// The temp dir (a TempDir: under TMPDIR or /tmp) holds the db, logs and whatever a test writes
// there (see WriteFile()); it is removed by the destructor unless TUNELEDGER_KEEP_TEST_DIRS=1.
// Binaries come from TUNELEDGER_BIN_DIR (the build's bin/ folder) unless options say otherwise.
//
// Thread safety: one test thread drives a harness; RunTunectl() may be called from several
// threads at once while the server runs.
#ifndef TUNELEDGER_TESTS_TESTING_SERVER_HARNESS_H_
#define TUNELEDGER_TESTS_TESTING_SERVER_HARNESS_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/child_process.h"
#include "tests/testing/temp_dir.h"

namespace tuneledger::testing {

// The build's bin/ folder (TUNELEDGER_BIN_DIR) joined with `name`.
std::string BinaryPath(const std::string& name);

struct ServerHarnessOptions {
  // Appended to the server's command line, e.g. {"--local-workers", "1", "--work-dir", dir}.
  std::vector<std::string> extra_args;
  // Each is passed as --data-root. "/" by default: these tests' files live in temp and build
  // folders; the data-root tests name their own.
  std::vector<std::string> data_roots = {"/"};
  // Non-empty: the server gets a tokens file whose one line makes this a worker token (and
  // leaves JobService open), so that workers started by the test can authenticate. Do not
  // combine with a --tokens-file in extra_args.
  std::string worker_token;
  // Set in the server's environment (on top of this process's).
  std::map<std::string, std::string> env;
  absl::Duration ready_timeout = absl::Seconds(60);
  std::string server_binary;   // empty: BinaryPath("tuneledger-server")
  std::string tunectl_binary;  // empty: BinaryPath("tunectl")
};

// A finished program run.
struct CommandResult {
  ExitStatus status;
  int exit_code = -1;  // status.code when it exited, else -1 (killed by a signal)
  std::string stdout_text;
  std::string stderr_text;
  // "exit code 1; stdout: ...; stderr: ..." for failure messages.
  std::string ToString() const;
};

class ServerHarness {
 public:
  enum class Port { kEphemeral, kSameGrpcPort };

  explicit ServerHarness(ServerHarnessOptions options = {});
  // Stops a running server (SIGTERM, then SIGKILL after 10 s) and removes the temp dir.
  ~ServerHarness();
  ServerHarness(const ServerHarness&) = delete;
  ServerHarness& operator=(const ServerHarness&) = delete;

  // Starts the server on this harness's db and waits until it is ready. FAILED_PRECONDITION
  // when it already runs.
  absl::Status Start(Port port = Port::kEphemeral);
  // SIGKILL (no chance to clean up) and reap.
  absl::Status Kill();
  // SIGTERM, wait up to `grace` for a clean exit, then SIGKILL; returns how it ended.
  absl::StatusOr<ExitStatus> Stop(absl::Duration grace = absl::Seconds(20));
  bool running() const { return process_ != nullptr; }
  // The options the next Start() uses (e.g. add flags that name files in temp_dir()).
  ServerHarnessOptions& options() { return options_; }

  // Valid after Start(): "127.0.0.1:PORT" of the gRPC (JobService), worker (WorkerService) and
  // /metrics listeners, and the pid.
  const std::string& grpc_address() const { return grpc_address_; }
  const std::string& worker_address() const { return worker_address_; }
  const std::string& metrics_address() const { return metrics_address_; }
  int pid() const;

  const std::string& temp_dir() const { return temp_dir_.path(); }
  const std::string& db_path() const { return db_path_; }
  std::string log_path() const { return temp_dir_.File("server.log"); }
  // The last `max_bytes` of the server's log.
  std::string LogTail(size_t max_bytes = 4000) const;

  // Runs `tunectl --server <grpc_address> args...` to completion (with TUNELEDGER_SERVER,
  // TUNELEDGER_TOKEN and TUNELEDGER_TLS_CA removed from its environment, `env` added) in `cwd`
  // (empty: temp_dir()).
  absl::StatusOr<CommandResult> RunTunectl(const std::vector<std::string>& args,
                                           absl::Duration timeout = absl::Seconds(60),
                                           const std::map<std::string, std::string>& env = {},
                                           const std::string& cwd = "") const;
  // The same command line, started and left running (e.g. `watch`): its stdout is a pipe
  // (stdout_fd()), its stderr is appended to <temp>/tunectl-<n>.err.
  absl::StatusOr<std::unique_ptr<ChildProcess>> StartTunectl(
      const std::vector<std::string>& args, const std::map<std::string, std::string>& env = {});

 private:
  std::vector<std::string> TunectlArgv(const std::vector<std::string>& args) const;

  ServerHarnessOptions options_;
  TempDir temp_dir_;
  std::string db_path_;
  std::string grpc_address_;
  std::string worker_address_;
  std::string metrics_address_;
  int starts_ = 0;
  int tunectl_starts_ = 0;
  std::unique_ptr<ChildProcess> process_;
};

// Reads lines from a pipe (a started tunectl's stdout_fd()) with deadlines. Does not own fd.
class LineReader {
 public:
  explicit LineReader(int fd) : fd_(fd) {}
  // The next line without its '\n': DEADLINE_EXCEEDED when none is complete by the timeout,
  // OUT_OF_RANGE at end of file (what was left unterminated is in the message).
  absl::StatusOr<std::string> ReadLine(absl::Duration timeout);
  // Reads lines until one contains `text` and returns it; the lines before it are dropped.
  absl::StatusOr<std::string> ReadLineContaining(const std::string& text, absl::Duration timeout);

 private:
  int fd_;
  std::string buffer_;  // read but not yet returned
};

// Writes `contents` to `path` (creating parent folders). INTERNAL if it cannot.
absl::Status WriteFile(const std::string& path, const std::string& contents);
// Reads a whole file. NOT_FOUND if it cannot.
absl::StatusOr<std::string> ReadFile(const std::string& path);

}  // namespace tuneledger::testing

#endif  // TUNELEDGER_TESTS_TESTING_SERVER_HARNESS_H_
