#include "server/server_flags.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/ready_file.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace tuneledger {
namespace {

using ::testing::HasSubstr;
using ::tuneledger::testing::StatusIs;

TEST(ServerFlagsTest, DefaultsFollowTheCliContract) {
  absl::StatusOr<ServerFlags> flags = ParseServerFlags({"--data-root", "/data"});
  ASSERT_OK(flags);
  EXPECT_EQ(flags->data_roots, std::vector<std::string>{"/data"});
  EXPECT_EQ(flags->listen, "127.0.0.1:50051");
  EXPECT_EQ(flags->metrics_listen, "127.0.0.1:9464");
  EXPECT_EQ(flags->local_workers, 0);
  EXPECT_EQ(flags->heartbeat_timeout, absl::Seconds(15));
  EXPECT_EQ(flags->report_interval, absl::Seconds(1));
  EXPECT_EQ(flags->metrics_job_retention, absl::Minutes(10));
  EXPECT_FALSE(flags->spot);
}

TEST(ServerFlagsTest, ParsesBothSpellingsDurationsAndSwitches) {
  absl::StatusOr<ServerFlags> flags = ParseServerFlags({"--listen",
                                                        "127.0.0.1:0",
                                                        "--metrics-listen=127.0.0.1:0",
                                                        "--db",
                                                        "/tmp/x.db",
                                                        "--local-workers",
                                                        "2",
                                                        "--work-dir",
                                                        "/tmp/w",
                                                        "--price-per-gpu-hour",
                                                        "2.5",
                                                        "--spot",
                                                        "--heartbeat-timeout",
                                                        "3s",
                                                        "--report-interval=250ms",
                                                        "--metrics-job-retention",
                                                        "90",
                                                        "--ready-file",
                                                        "/tmp/ready.json",
                                                        "--tokens-file",
                                                        "/tmp/tokens",
                                                        "--data-root",
                                                        "/models",
                                                        "--data-root=alice=/data/alice"});
  ASSERT_OK(flags);
  EXPECT_EQ(flags->listen, "127.0.0.1:0");
  EXPECT_EQ(flags->metrics_listen, "127.0.0.1:0");
  EXPECT_EQ(flags->db, "/tmp/x.db");
  EXPECT_EQ(flags->local_workers, 2);
  EXPECT_EQ(flags->work_dir, "/tmp/w");
  EXPECT_DOUBLE_EQ(flags->price_per_gpu_hour, 2.5);
  EXPECT_TRUE(flags->spot);
  EXPECT_EQ(flags->heartbeat_timeout, absl::Seconds(3));
  EXPECT_EQ(flags->report_interval, absl::Milliseconds(250));
  EXPECT_EQ(flags->metrics_job_retention, absl::Seconds(90));
  EXPECT_EQ(flags->ready_file, "/tmp/ready.json");
  EXPECT_EQ(flags->tokens_file, "/tmp/tokens");
  EXPECT_EQ(flags->data_roots, (std::vector<std::string>{"/models", "alice=/data/alice"}));
}

TEST(ServerFlagsTest, BadFlagsNameTheFlagAndTheValue) {
  EXPECT_THAT(ParseServerFlags({"--nope"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown flag --nope")));
  EXPECT_THAT(
      ParseServerFlags({"--listen", "localhost"}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--listen: must be HOST:PORT")));
  EXPECT_THAT(ParseServerFlags({"--heartbeat-timeout", "soon"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--heartbeat-timeout: must be a duration")));
  EXPECT_THAT(ParseServerFlags({"--local-workers", "-1"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--local-workers")));
  EXPECT_THAT(ParseServerFlags({"--price-per-gpu-hour", "-2"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--price-per-gpu-hour")));
  EXPECT_THAT(ParseServerFlags({"--db"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--db: needs a value")));
  EXPECT_THAT(ParseServerFlags({}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--data-root is required")));
  EXPECT_THAT(ParseServerFlags(
                  {"--data-root", "/d", "--heartbeat-timeout", "1s", "--report-interval", "2s"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("must be longer than --report-interval")));
  EXPECT_THAT(ParseServerFlags({"stray"}), StatusIs(absl::StatusCode::kInvalidArgument));
}

// Issue 10.2: the TLS files come as a set; the files themselves are read at start (main.cc,
// base/tls_credentials.h).
TEST(ServerFlagsTest, TlsAndMetricsTokenFlags) {
  absl::StatusOr<ServerFlags> flags = ParseServerFlags(
      {"--data-root", "/d", "--tls-cert", "/tls/server.pem", "--tls-key", "/tls/server.key",
       "--tls-client-ca=/tls/ca.pem", "--metrics-token-file", "/tls/metrics-token"});
  ASSERT_OK(flags);
  EXPECT_EQ(flags->tls_cert, "/tls/server.pem");
  EXPECT_EQ(flags->tls_key, "/tls/server.key");
  EXPECT_EQ(flags->tls_client_ca, "/tls/ca.pem");
  EXPECT_EQ(flags->metrics_token_file, "/tls/metrics-token");

  struct Row {
    std::vector<std::string> args;
    std::string message;
  };
  for (const Row& row : std::vector<Row>{
           {{"--tls-cert", "/c.pem"}, "--tls-cert needs --tls-key"},
           {{"--tls-key", "/c.key"}, "--tls-key needs --tls-cert"},
           {{"--tls-client-ca", "/ca.pem"}, "--tls-client-ca needs --tls-cert"},
           {{"--tls-cert", ""}, "--tls-cert: must name a file"},
           {{"--metrics-token-file", ""}, "--metrics-token-file: must name a file"},
       }) {
    std::vector<std::string> args = {"--data-root", "/d"};
    args.insert(args.end(), row.args.begin(), row.args.end());
    EXPECT_THAT(ParseServerFlags(args),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(row.message)))
        << row.message;
  }
}

TEST(ServerFlagsTest, HelpExplainsEveryFlag) {
  absl::StatusOr<ServerFlags> flags = ParseServerFlags({"--help"});
  ASSERT_TRUE(flags.ok()) << "--help needs no --data-root: " << flags.status();
  EXPECT_TRUE(flags->help);
  const std::string usage = ServerUsage();
  for (const char* flag : {"--listen",
                           "--worker-listen",
                           "--max-price-per-gpu-hour",
                           "--metrics-listen",
                           "--db",
                           "--local-workers",
                           "--work-dir",
                           "--price-per-gpu-hour",
                           "--spot",
                           "--ready-file",
                           "--tokens-file",
                           "--heartbeat-timeout",
                           "--report-interval",
                           "--metrics-job-retention",
                           "--max-rpc-threads",
                           "--data-root",
                           "--tls-cert",
                           "--tls-key",
                           "--tls-client-ca",
                           "--metrics-token-file",
                           "--help"}) {
    EXPECT_THAT(usage, HasSubstr(flag));
  }
}

TEST(ReadyFileTest, WritesTheContractJsonAndLeavesNoTemporaryFile) {
  testing::TempDir dir;
  const std::string path = dir.File("ready.json");
  ASSERT_OK(WriteReadyFile(path, {"127.0.0.1:4242", "127.0.0.1:4444", "127.0.0.1:4343"}, 77));
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  EXPECT_EQ(text.str(),
            "{\"grpc\":\"127.0.0.1:4242\",\"worker\":\"127.0.0.1:4444\","
            "\"metrics\":\"127.0.0.1:4343\",\"pid\":77}\n");
  int entries = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    ++entries;
  }
  EXPECT_EQ(entries, 1);
  EXPECT_THAT(WriteReadyFile(dir.File("missing/ready.json"), {"a:1", "c:3", "b:2"}, 1),
              StatusIs(absl::StatusCode::kUnavailable));
}

}  // namespace
}  // namespace tuneledger
