// The real tuneledger-server binary: readiness contract, health via a client the project did not
// write (Debian's python3-grpcio), /metrics, and a clean SIGTERM shutdown.
#include <signal.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "base/child_process.h"
#include "base/status_macros.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/test_certificates.h"

namespace tuneledger {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::tuneledger::testing::TempDir;

constexpr absl::Duration kReadyTimeout = absl::Seconds(60);
constexpr char kPython[] = "/usr/bin/python3";

std::string ServerBinary() { return std::string(TUNELEDGER_BIN_DIR) + "/tuneledger-server"; }

std::string ReadFile(const std::string& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

// The value of "key" in the ready file's flat JSON object.
std::string JsonField(const std::string& json, const std::string& key) {
  const std::string marker = "\"" + key + "\":";
  const size_t at = json.find(marker);
  if (at == std::string::npos) return "";
  size_t begin = at + marker.size();
  size_t end = json.find_first_of(",}", begin);
  std::string value = json.substr(begin, end - begin);
  return std::string(absl::StripSuffix(absl::StripPrefix(value, "\""), "\""));
}

struct RunningServer {
  std::unique_ptr<ChildProcess> process;
  std::string ready_json;
  std::string grpc;
  std::string worker;
  std::string metrics;
};

class ServerMainTest : public ::testing::Test {
 protected:
  // Starts the server and waits (deadline) for its ready file; fails if it exits first.
  absl::StatusOr<RunningServer> StartServer(const std::vector<std::string>& extra = {}) {
    const std::string ready = dir_.File(absl::StrCat("ready-", ++starts_, ".json"));
    ChildProcessOptions options;
    options.argv = {ServerBinary(),         "--listen",     "127.0.0.1:0",
                    "--metrics-listen",     "127.0.0.1:0",  "--db",
                    dir_.File("server.db"), "--ready-file", ready,
                    "--data-root",          dir_.path()};
    options.argv.insert(options.argv.end(), extra.begin(), extra.end());
    options.stdout_mode = StdioMode::kFile;
    options.stdout_path = log_path();
    options.stderr_mode = StdioMode::kFile;
    options.stderr_path = log_path();
    RunningServer server;
    TL_ASSIGN_OR_RETURN(server.process, ChildProcess::Start(options));
    const absl::Time deadline = absl::Now() + kReadyTimeout;
    while (!std::filesystem::exists(ready)) {
      // Waiting on the child doubles as the pause between looks, and notices an early exit.
      absl::StatusOr<ExitStatus> exited = server.process->Wait(absl::Milliseconds(50));
      if (exited.ok()) {
        return absl::InternalError(absl::StrCat("server exited before it was ready (",
                                                exited->ToString(), "): ", ReadFile(log_path())));
      }
      if (absl::Now() > deadline) {
        return absl::DeadlineExceededError(absl::StrCat("no ready file after ",
                                                        absl::FormatDuration(kReadyTimeout), ": ",
                                                        ReadFile(log_path())));
      }
    }
    server.ready_json = ReadFile(ready);
    server.grpc = JsonField(server.ready_json, "grpc");
    server.worker = JsonField(server.ready_json, "worker");
    server.metrics = JsonField(server.ready_json, "metrics");
    return server;
  }

  absl::StatusOr<CompletedProcess> Python(const std::vector<std::string>& args) {
    ChildProcessOptions options;
    options.argv = {kPython};
    options.argv.insert(options.argv.end(), args.begin(), args.end());
    return ChildProcess::RunToCompletion(options, absl::Seconds(60));
  }

  std::string log_path() const { return dir_.File("server.log"); }

  TempDir dir_;
  int starts_ = 0;
};

TEST_F(ServerMainTest, ReadyFileHealthMetricsAndACleanSigtermExit) {
  absl::StatusOr<RunningServer> server = StartServer();
  ASSERT_OK(server);
  EXPECT_THAT(server->grpc, ::testing::StartsWith("127.0.0.1:"));
  EXPECT_THAT(server->metrics, ::testing::StartsWith("127.0.0.1:"));
  EXPECT_NE(server->grpc, "127.0.0.1:0") << "the real port is in the ready file";
  EXPECT_EQ(JsonField(server->ready_json, "pid"), absl::StrCat(server->process->pid()));

  // grpc.health.v1 through Debian's python3-grpcio.
  const std::string health_check =
      std::string(TUNELEDGER_SOURCE_DIR) + "/tests/server/health_check.py";
  for (const std::string service : {"", "tuneledger.v1.JobService"}) {
    absl::StatusOr<CompletedProcess> health = Python({health_check, server->grpc, service});
    ASSERT_OK(health);
    EXPECT_TRUE(health->status.success()) << health->status.ToString() << "\n"
                                          << health->stderr_text;
    EXPECT_EQ(health->stdout_text, "SERVING\n") << "service \"" << service << "\"";
  }

  // /metrics answers with the server's own families.
  absl::StatusOr<CompletedProcess> scrape =
      Python({"-c",
              "import sys, urllib.request; "
              "sys.stdout.write(urllib.request.urlopen('http://' + sys.argv[1] + '/metrics', "
              "timeout=10).read().decode())",
              server->metrics});
  ASSERT_OK(scrape);
  EXPECT_THAT(scrape->stdout_text, HasSubstr("tuneledger_queue_depth"));
  EXPECT_THAT(scrape->stdout_text, HasSubstr("tuneledger_rpc_duration_seconds"))
      << "the health checks above were timed";

  ASSERT_OK(server->process->Signal(SIGTERM));
  absl::StatusOr<ExitStatus> exit = server->process->Wait(absl::Seconds(30));
  ASSERT_OK(exit);
  EXPECT_TRUE(exit->success()) << exit->ToString() << "\n" << ReadFile(log_path());
  EXPECT_THAT(ReadFile(log_path()), HasSubstr("stopped cleanly"));
}

TEST_F(ServerMainTest, LocalWorkersDialTheBoundPortAndAreStoppedOnShutdown) {
  const std::string worker_log = dir_.File("fake-worker.log");
  setenv("FAKE_WORKER_LOG", worker_log.c_str(), 1);  // inherited by the server and its workers
  absl::StatusOr<RunningServer> server =
      StartServer({"--local-workers", "2", "--work-dir", dir_.File("work"), "--price-per-gpu-hour",
                   "1.5", "--spot", "--worker-binary",
                   std::string(TUNELEDGER_SOURCE_DIR) + "/tests/server/fake_worker.sh"});
  ASSERT_OK(server);
  // Both workers were started (before the ready file) and got the real worker port.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  std::string log = ReadFile(worker_log);
  while (std::count(log.begin(), log.end(), '\n') < 4 && absl::Now() < deadline) {
    ASSERT_FALSE(server->process->Wait(absl::Milliseconds(50)).ok()) << ReadFile(log_path());
    log = ReadFile(worker_log);
  }
  EXPECT_NE(server->worker, server->grpc);
  EXPECT_THAT(log, HasSubstr("--server " + server->worker));
  // Their credential comes in the environment, never on the command line.
  EXPECT_THAT(log, HasSubstr("token=64-hex-digits"));
  EXPECT_THAT(log, Not(HasSubstr("token=unset")));
  EXPECT_THAT(log, HasSubstr("--price-per-gpu-hour 1.5"));
  EXPECT_THAT(log, HasSubstr("--spot"));
  EXPECT_THAT(log, HasSubstr("--data-root " + dir_.path()));  // the server's roots, passed on

  ASSERT_OK(server->process->Signal(SIGTERM));
  absl::StatusOr<ExitStatus> exit = server->process->Wait(absl::Seconds(60));
  ASSERT_OK(exit);
  EXPECT_TRUE(exit->success()) << exit->ToString() << "\n" << ReadFile(log_path());
  log = ReadFile(worker_log);
  size_t stopped = 0;
  for (size_t at = log.find("stopped"); at != std::string::npos; at = log.find("stopped", at + 1)) {
    ++stopped;
  }
  EXPECT_EQ(stopped, 2u) << "each local worker got SIGTERM before the server exited:\n" << log;
  unsetenv("FAKE_WORKER_LOG");
}

TEST_F(ServerMainTest, SigintAlsoShutsDownCleanlyAndTheDbReopens) {
  for (int run = 0; run < 2; ++run) {
    absl::StatusOr<RunningServer> server = StartServer();
    ASSERT_OK(server);
    ASSERT_OK(server->process->Signal(SIGINT));
    absl::StatusOr<ExitStatus> exit = server->process->Wait(absl::Seconds(30));
    ASSERT_OK(exit);
    EXPECT_TRUE(exit->success()) << "run " << run << ": " << exit->ToString();
  }
}

TEST_F(ServerMainTest, AnAddressInUseExitsAtOnceWithOneLineAndNoDatabase) {
  absl::StatusOr<RunningServer> first = StartServer();
  ASSERT_OK(first);
  ChildProcessOptions options;
  options.argv = {ServerBinary(),         "--listen",    first->grpc,
                  "--metrics-listen",     "127.0.0.1:0", "--db",
                  dir_.File("second.db"), "--data-root", dir_.path()};
  absl::StatusOr<CompletedProcess> second =
      ChildProcess::RunToCompletion(options, absl::Seconds(60));
  ASSERT_OK(second);
  EXPECT_EQ(second->status.code, 1) << second->status.ToString();
  EXPECT_THAT(second->stderr_text,
              HasSubstr(absl::StrCat("--listen ", first->grpc, ": the address is in use")));
  EXPECT_EQ(std::count(second->stderr_text.begin(), second->stderr_text.end(), '\n'), 1)
      << second->stderr_text;
  EXPECT_FALSE(std::filesystem::exists(dir_.File("second.db")))
      << "stopped before it created the database";
  ASSERT_OK(first->process->Signal(SIGTERM));
  ASSERT_OK(first->process->Wait(absl::Seconds(30)));
}

// Issue 10.2: --metrics-token-file puts /metrics behind HTTP Basic auth whose password is the
// token (prometheus-cpp's Exposer offers Basic only: server/main.cc).
TEST_F(ServerMainTest, MetricsTokenFileRequiresTheTokenOnEveryScrape) {
  const std::string token_file = dir_.Write("metrics-token", "scrape-s3cret\n");
  absl::StatusOr<RunningServer> server = StartServer({"--metrics-token-file", token_file});
  ASSERT_OK(server);
  // Prints the HTTP status of GET /metrics with the given Basic credentials ("" = none), then
  // the body.
  const std::string scrape_script =
      "import base64, sys, urllib.error, urllib.request\n"
      "request = urllib.request.Request('http://' + sys.argv[1] + '/metrics')\n"
      "if sys.argv[2]:\n"
      "  request.add_header('Authorization', 'Basic ' + "
      "base64.b64encode(sys.argv[2].encode()).decode())\n"
      "try:\n"
      "  response = urllib.request.urlopen(request, timeout=10)\n"
      "  print(response.status); print(response.read().decode())\n"
      "except urllib.error.HTTPError as error:\n"
      "  print(error.code)\n";
  struct Row {
    std::string credentials;
    std::string status;
  };
  for (const Row& row : std::vector<Row>{{"", "401"},
                                         {"prometheus:guess", "401"},
                                         {"prometheus:scrape-s3cret-and-more", "401"},
                                         {"prometheus:scrape-s3cret", "200"},
                                         {"anyone:scrape-s3cret", "200"}}) {
    absl::StatusOr<CompletedProcess> scrape =
        Python({"-c", scrape_script, server->metrics, row.credentials});
    ASSERT_OK(scrape);
    ASSERT_TRUE(scrape->status.success()) << scrape->stderr_text;
    EXPECT_THAT(scrape->stdout_text, ::testing::StartsWith(row.status + "\n"))
        << "credentials '" << row.credentials << "'";
    if (row.status == "200") EXPECT_THAT(scrape->stdout_text, HasSubstr("tuneledger_queue_depth"));
  }
  ASSERT_OK(server->process->Signal(SIGTERM));
  ASSERT_OK(server->process->Wait(absl::Seconds(30)));
}

// Issue 10.2: a bad TLS file stops the server at once, with one line naming the flag.
TEST_F(ServerMainTest, ABadTlsFileExitsAtOnceNamingTheFlag) {
  absl::StatusOr<testing::TestCertificates> certs = testing::MakeTestCertificates(dir_.File("tls"));
  ASSERT_OK(certs);
  struct Row {
    std::vector<std::string> flags;
    std::string message;
  };
  for (const Row& row : std::vector<Row>{
           {{"--tls-cert", certs->server_cert, "--tls-key", certs->client_key},
            "--tls-key: " + certs->client_key + " does not match the certificate in --tls-cert"},
           {{"--tls-cert", dir_.File("missing.pem"), "--tls-key", certs->server_key},
            "--tls-cert: cannot read"},
           {{"--metrics-token-file", dir_.File("missing-token")},
            "--metrics-token-file: cannot read"},
       }) {
    ChildProcessOptions options;
    options.argv = {ServerBinary(),          "--listen",    "127.0.0.1:0",
                    "--metrics-listen",      "127.0.0.1:0", "--db",
                    dir_.File("bad-tls.db"), "--data-root", dir_.path()};
    options.argv.insert(options.argv.end(), row.flags.begin(), row.flags.end());
    absl::StatusOr<CompletedProcess> done =
        ChildProcess::RunToCompletion(options, absl::Seconds(30));
    ASSERT_OK(done);
    EXPECT_EQ(done->status.code, 1) << done->status.ToString();
    EXPECT_THAT(done->stderr_text, HasSubstr(row.message));
    EXPECT_EQ(std::count(done->stderr_text.begin(), done->stderr_text.end(), '\n'), 1)
        << done->stderr_text;
    EXPECT_FALSE(std::filesystem::exists(dir_.File("bad-tls.db")))
        << "stopped before it opened the database";
  }
}

TEST_F(ServerMainTest, HelpExitsZeroAndABadFlagExitsTwo) {
  ChildProcessOptions help;
  help.argv = {ServerBinary(), "--help"};
  absl::StatusOr<CompletedProcess> shown = ChildProcess::RunToCompletion(help, absl::Seconds(30));
  ASSERT_OK(shown);
  EXPECT_TRUE(shown->status.success());
  EXPECT_THAT(shown->stdout_text, HasSubstr("--ready-file"));

  ChildProcessOptions bad;
  bad.argv = {ServerBinary(), "--listen", "nowhere"};
  absl::StatusOr<CompletedProcess> refused = ChildProcess::RunToCompletion(bad, absl::Seconds(30));
  ASSERT_OK(refused);
  EXPECT_EQ(refused->status.code, 2);
  EXPECT_THAT(refused->stderr_text, HasSubstr("--listen: must be HOST:PORT"));
}

}  // namespace
}  // namespace tuneledger
