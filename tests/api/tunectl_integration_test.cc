// tunectl end to end: the real tunectl binary against the real tuneledger-server on free
// loopback ports, with no workers (jobs stay QUEUED unless cancelled).
#include <signal.h>
#include <sys/stat.h>

#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/child_process.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/server_harness.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_certificates.h"

namespace tuneledger {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::tuneledger::testing::CommandResult;
using ::tuneledger::testing::LineReader;
using ::tuneledger::testing::ServerHarness;

using Json = nlohmann::json;

constexpr int kExitError = 1;
constexpr int kExitUsage = 2;
constexpr int kExitCancelled = 4;

// A model folder that passes the server's input checks (config.json + a *.safetensors file);
// nothing here trains, so the weights can be an empty safetensors file.
void MakeTinyModel(const std::string& dir) {
  ASSERT_OK(testing::WriteFile(dir + "/config.json", R"({
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 16,
    "intermediate_size": 32, "num_attention_heads": 2, "num_key_value_heads": 2,
    "num_hidden_layers": 1, "vocab_size": 260, "max_position_embeddings": 64,
    "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": true})"));
  // safetensors: 8-byte little-endian header length, then the JSON header "{}".
  ASSERT_OK(
      testing::WriteFile(dir + "/model.safetensors", std::string("\x02\0\0\0\0\0\0\0{}", 10)));
}

class TunectlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK(server_.Start());
    MakeTinyModel(server_.temp_dir() + "/model");
    ASSERT_OK(testing::WriteFile(server_.temp_dir() + "/train.jsonl",
                                 "{\"text\": \"hello world\"}\n{\"text\": \"goodbye\"}\n"));
    // tunectl runs from a folder next to the data, so its relative paths only resolve if tunectl
    // makes them absolute (the server's working directory is temp_dir()).
    client_dir_ = server_.temp_dir() + "/client";
    ASSERT_OK(testing::WriteFile(client_dir_ + "/.keep", ""));
  }

  // Runs tunectl from client_dir_; fails the test if it cannot be run at all.
  CommandResult Tunectl(const std::vector<std::string>& args,
                        const std::map<std::string, std::string>& env = {}) {
    absl::StatusOr<CommandResult> result =
        server_.RunTunectl(args, absl::Seconds(60), env, client_dir_);
    EXPECT_OK(result);
    if (!result.ok()) return CommandResult{};
    return *result;
  }

  // Runs tunectl and expects exit code 0.
  std::string TunectlOk(const std::vector<std::string>& args) {
    CommandResult result = Tunectl(args);
    EXPECT_EQ(result.exit_code, 0) << "tunectl " << ::testing::PrintToString(args) << "\n"
                                   << result.ToString();
    return result.stdout_text;
  }

  Json TunectlJson(const std::vector<std::string>& args) {
    std::vector<std::string> json_args = args;
    json_args.insert(json_args.end(), {"--output", "json"});
    const std::string out = TunectlOk(json_args);
    Json json = Json::parse(out, nullptr, /*allow_exceptions=*/false);
    EXPECT_FALSE(json.is_discarded()) << "not one JSON document: " << out;
    return json;
  }

  // Submits a valid job with relative paths; returns its id.
  std::string Submit(const std::string& name, int priority) {
    const std::string out =
        TunectlOk({"submit", "--model", "../model", "--train", "../train.jsonl", "--name", name,
                   "--priority", absl::StrCat(priority), "--max-steps", "10"});
    EXPECT_FALSE(out.empty());
    EXPECT_EQ(out.back(), '\n');
    return out.substr(0, out.find('\n'));
  }

  std::vector<std::string> ListedIds(const Json& list) {
    std::vector<std::string> ids;
    for (const Json& job : list["jobs"]) ids.push_back(job["id"].get<std::string>());
    return ids;
  }

  ServerHarness server_;
  std::string client_dir_;
};

TEST_F(TunectlTest, SubmitListCancelSurviveAServerKill) {
  const std::string low = Submit("low", 1);
  const std::string high = Submit("high", 7);
  const std::string mid = Submit("mid", 4);

  // Dispatch order: priority, highest first; every job QUEUED (no workers).
  Json list = TunectlJson({"list"});
  ASSERT_EQ(ListedIds(list), (std::vector<std::string>{high, mid, low})) << list.dump(2);
  for (const Json& job : list["jobs"]) {
    EXPECT_EQ(job["state"], "QUEUED") << job.dump(2);
    // Relative paths reached the server absolute (tunectl ran in a sibling folder).
    EXPECT_EQ(job["spec"]["model_path"], server_.temp_dir() + "/model") << job.dump(2);
    EXPECT_EQ(job["spec"]["train_path"], server_.temp_dir() + "/train.jsonl") << job.dump(2);
  }
  EXPECT_TRUE(list.contains("next_page_token")) << list.dump(2);

  // The table form lists the same order in aligned columns.
  const std::string table = TunectlOk({"list"});
  EXPECT_THAT(table, HasSubstr("STATE"));
  EXPECT_LT(table.find(" high "), table.find(" mid "));
  EXPECT_LT(table.find(" mid "), table.find(" low "));

  // Cancel one: CANCELLED with reason USER, in the job and in its last event.
  const CommandResult cancel = Tunectl({"cancel", mid, "--message", "not needed"});
  ASSERT_EQ(cancel.exit_code, 0) << cancel.ToString();
  EXPECT_THAT(cancel.stdout_text, HasSubstr("CANCELLED"));
  Json cancelled = TunectlJson({"get", mid});
  EXPECT_EQ(cancelled["state"], "CANCELLED") << cancelled.dump(2);
  EXPECT_EQ(cancelled["reason"], "USER") << cancelled.dump(2);
  Json events = TunectlJson({"events", mid});
  ASSERT_FALSE(events["events"].empty()) << events.dump(2);
  EXPECT_EQ(events["events"].front()["kind"], "SUBMITTED") << events.dump(2);
  EXPECT_EQ(events["events"].back()["kind"], "CANCELLED") << events.dump(2);
  EXPECT_EQ(events["events"].back()["reason"], "USER") << events.dump(2);
  list = TunectlJson({"list"});
  ASSERT_EQ(ListedIds(list), (std::vector<std::string>{high, low, mid})) << list.dump(2);

  // Everything each job shows before the crash...
  std::map<std::string, Json> jobs_before, events_before;
  for (const std::string& id : {low, high, mid}) {
    jobs_before[id] = TunectlJson({"get", id});
    events_before[id] = TunectlJson({"events", id});
  }
  // ...is there, unchanged, after SIGKILL and a restart on the same db.
  ASSERT_OK(server_.Kill());
  ASSERT_OK(server_.Start());
  for (const std::string& id : {low, high, mid}) {
    const Json job_after = TunectlJson({"get", id});
    EXPECT_EQ(job_after, jobs_before[id])
        << "job " << id << "\nexpected: " << jobs_before[id].dump(2)
        << "\nactual: " << job_after.dump(2);
    const Json events_after = TunectlJson({"events", id});
    EXPECT_EQ(events_after, events_before[id])
        << "events of job " << id << "\nexpected: " << events_before[id].dump(2)
        << "\nactual: " << events_after.dump(2);
  }
  const Json list_after = TunectlJson({"list"});
  EXPECT_EQ(list_after, list) << "expected: " << list.dump(2) << "\nactual: " << list_after.dump(2);
}

TEST_F(TunectlTest, EqualPrioritiesAreListedFirstInFirstOut) {
  const std::string first = Submit("first", 2);
  const std::string top = Submit("top", 9);
  const std::string second = Submit("second", 2);
  const std::string third = Submit("third", 2);
  const Json list = TunectlJson({"list"});
  EXPECT_EQ(ListedIds(list), (std::vector<std::string>{top, first, second, third})) << list.dump(2);
}

struct InvalidSubmitCase {
  std::string what;
  std::vector<std::string> flags;  // replaces / adds to the valid submit's flags
  std::string field;               // the proto field the server must name
};

TEST_F(TunectlTest, InvalidSubmitsAreInvalidArgumentNamingTheFieldAndStoreNothing) {
  const std::string kept = Submit("kept", 0);
  const Json list_before = TunectlJson({"list"});
  const Json events_before = TunectlJson({"events", kept});

  const std::vector<InvalidSubmitCase> cases = {
      {"missing model folder", {"--model", "../no-such-model"}, "spec.model_path"},
      {"negative lr", {"--lr", "-0.1"}, "spec.training.learning_rate"},
      {"lora-r 0", {"--lora-r", "0"}, "spec.lora.r"},
      {"unknown target module", {"--target-modules", "q_proj,wq"}, "spec.lora.target_modules"},
  };
  for (const InvalidSubmitCase& c : cases) {
    SCOPED_TRACE(c.what);
    std::vector<std::string> args = {"submit",         "--model", "../model", "--train",
                                     "../train.jsonl", "--name",  "bad"};
    args.insert(args.end(), c.flags.begin(), c.flags.end());  // a later flag wins
    const CommandResult result = Tunectl(args);
    EXPECT_EQ(result.exit_code, kExitError) << result.ToString();
    EXPECT_THAT(result.stderr_text, HasSubstr("INVALID_ARGUMENT")) << result.ToString();
    EXPECT_THAT(result.stderr_text, HasSubstr(c.field)) << result.ToString();
    EXPECT_EQ(result.stdout_text, "") << result.ToString();
    // One line: the code and the server's message.
    EXPECT_EQ(result.stderr_text.find('\n'), result.stderr_text.size() - 1) << result.stderr_text;
  }
  const Json list_after = TunectlJson({"list"});
  EXPECT_EQ(list_after, list_before)
      << "expected: " << list_before.dump(2) << "\nactual: " << list_after.dump(2);
  const Json events_after = TunectlJson({"events", kept});
  EXPECT_EQ(events_after, events_before);
}

TEST_F(TunectlTest, ServerErrorsExitOneWithTheCodeAndUsageErrorsExitTwo) {
  const CommandResult missing = Tunectl({"get", "987654"});
  EXPECT_EQ(missing.exit_code, kExitError) << missing.ToString();
  EXPECT_THAT(missing.stderr_text, HasSubstr("NOT_FOUND")) << missing.ToString();

  const std::string id = Submit("once", 0);
  ASSERT_EQ(Tunectl({"cancel", id}).exit_code, 0);
  const CommandResult again = Tunectl({"cancel", id});
  EXPECT_EQ(again.exit_code, kExitError) << again.ToString();
  EXPECT_THAT(again.stderr_text, HasSubstr("FAILED_PRECONDITION")) << again.ToString();

  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"submit", "--model", "../model", "--train", "../train.jsonl", "--lr", "fast"},
           {"list", "--output", "yaml"},
           {"get"},
           {"frobnicate"},
           {"list", "--no-such-flag"}}) {
    const CommandResult usage = Tunectl(args);
    EXPECT_EQ(usage.exit_code, kExitUsage) << ::testing::PrintToString(args) << "\n"
                                           << usage.ToString();
    EXPECT_THAT(usage.stderr_text, HasSubstr("tunectl")) << usage.ToString();
  }
}

TEST_F(TunectlTest, SubmitProblemsFoundLocallyAreUsageErrorsAndStoreNothing) {
  const Json list_before = TunectlJson({"list"});
  struct LocalCase {
    std::vector<std::string> args;
    std::string message;
  };
  for (const LocalCase& c : std::vector<LocalCase>{
           // The usage line says --model and --train; the help promises exit 2.
           {{"submit"}, "missing --model DIR and --train FILE"},
           {{"submit", "--model", "../model"}, "missing --train FILE"},
           // A spec file that is not there is the caller's typo, not a server's NOT_FOUND.
           {{"submit", "--spec", "no-such-spec.json"},
            "--spec: cannot read " + client_dir_ + "/no-such-spec.json"},
       }) {
    const CommandResult result = Tunectl(c.args);
    EXPECT_EQ(result.exit_code, kExitUsage) << ::testing::PrintToString(c.args) << "\n"
                                            << result.ToString();
    EXPECT_THAT(result.stderr_text, HasSubstr(c.message)) << result.ToString();
    EXPECT_THAT(result.stderr_text, Not(HasSubstr("NOT_FOUND"))) << result.ToString();
    EXPECT_THAT(result.stderr_text, HasSubstr("tunectl submit --help")) << result.ToString();
    EXPECT_EQ(result.stdout_text, "") << result.ToString();
  }
  EXPECT_EQ(TunectlJson({"list"}), list_before);
}

TEST(TunectlNoServerTest, SaysWhichAddressItTriedAndHowToFixIt) {
  ServerHarness server;
  ASSERT_OK(server.Start());
  const std::string address = server.grpc_address();
  ASSERT_OK(server.Kill());  // nothing listens on the address now
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"list"}, {"get", "1"}, {"watch", "1"}}) {
    ChildProcessOptions child;
    child.argv = {testing::BinaryPath("tunectl")};
    child.argv.insert(child.argv.end(), args.begin(), args.end());
    child.unset_env = {"TUNELEDGER_TOKEN"};
    child.env = {{"TUNELEDGER_SERVER", address}};
    absl::StatusOr<CompletedProcess> done = ChildProcess::RunToCompletion(child, absl::Seconds(60));
    ASSERT_OK(done);
    const std::string& err = done->stderr_text;
    EXPECT_EQ(done->status.code, kExitError) << done->status.ToString() << "\n" << err;
    EXPECT_THAT(err, HasSubstr("cannot reach tuneledger-server at " + address)) << err;
    EXPECT_THAT(err, HasSubstr("tuneledger-server --listen " + address)) << err;
    EXPECT_THAT(err, HasSubstr("TUNELEDGER_SERVER")) << err;
    EXPECT_THAT(err, HasSubstr("--server HOST:PORT")) << err;
    EXPECT_THAT(err, Not(HasSubstr("failed to connect to all addresses"))) << err;
    EXPECT_EQ(done->stdout_text, "") << done->stdout_text;
  }
}

TEST_F(TunectlTest, EveryCommandAnswersInTableAndJson) {
  const std::string id = Submit("all-commands", 3);
  const Json submitted = TunectlJson(
      {"submit", "--model", "../model", "--train", "../train.jsonl", "--name", "as-json"});
  ASSERT_TRUE(submitted.contains("id")) << submitted.dump();
  EXPECT_NE(submitted["id"], id);

  EXPECT_THAT(TunectlOk({"get", id}), HasSubstr("all-commands"));
  EXPECT_EQ(TunectlJson({"get", id})["spec"]["name"], "all-commands");
  EXPECT_THAT(TunectlOk({"events", id}), HasSubstr("SUBMITTED"));
  EXPECT_THAT(TunectlOk({"cost", id}), HasSubstr("Cost report for job " + id));
  const Json cost = TunectlJson({"cost", id});
  EXPECT_EQ(cost["job_id"], id) << cost.dump(2);
  EXPECT_EQ(cost["state"], "QUEUED") << cost.dump(2);
  EXPECT_EQ(TunectlOk({"workers"}), "no workers\n");
  EXPECT_TRUE(TunectlJson({"workers"})["workers"].empty());
  // No job has finished: the plane is empty, and a --label without '=' is a usage error.
  EXPECT_EQ(TunectlOk({"pareto", "--label", "sweep=a"}), "no finished jobs with an eval loss\n");
  EXPECT_TRUE(TunectlJson({"pareto"})["points"].empty());
  // list --state filters; global flags work before the command too.
  const Json queued = TunectlJson({"--output", "json", "list", "--state", "queued"});
  EXPECT_EQ(queued["jobs"].size(), 2u) << queued.dump(2);
  EXPECT_TRUE(TunectlJson({"list", "--state", "running,succeeded"})["jobs"].empty());
}

TEST_F(TunectlTest, WatchOfAFinishedJobExitsWithItsState) {
  const std::string id = Submit("short-lived", 0);
  ASSERT_EQ(Tunectl({"cancel", id}).exit_code, 0);
  const CommandResult plain = Tunectl({"watch", id});
  EXPECT_EQ(plain.exit_code, kExitCancelled) << plain.ToString();
  EXPECT_THAT(plain.stdout_text, HasSubstr("SUBMITTED"));
  EXPECT_THAT(plain.stdout_text, HasSubstr("CANCELLED reason USER"));
  EXPECT_THAT(plain.stdout_text, Not(HasSubstr("\x1b[")));  // piped: no terminal control

  const CommandResult json = Tunectl({"watch", id, "--output", "json"});
  EXPECT_EQ(json.exit_code, kExitCancelled) << json.ToString();
  size_t lines = 0;
  for (size_t start = 0; start < json.stdout_text.size();) {
    const size_t end = json.stdout_text.find('\n', start);
    ASSERT_NE(end, std::string::npos) << json.stdout_text;
    const Json update = Json::parse(json.stdout_text.substr(start, end - start), nullptr, false);
    ASSERT_FALSE(update.is_discarded()) << json.stdout_text;
    EXPECT_EQ(update["job"]["id"], id);
    ++lines;
    start = end + 1;
  }
  EXPECT_GE(lines, 2u) << json.stdout_text;  // SUBMITTED and CANCELLED, each with the job
}

TEST_F(TunectlTest, WatchFollowsTheJobAcrossAServerRestart) {
  const std::string id = Submit("watched", 0);
  absl::StatusOr<std::unique_ptr<ChildProcess>> watch =
      server_.StartTunectl({"watch", id, "--reconnect-timeout", "60"});
  ASSERT_OK(watch);
  LineReader out((*watch)->stdout_fd());
  ASSERT_OK(out.ReadLineContaining("QUEUED", absl::Seconds(30)));

  ASSERT_OK(server_.Kill());
  ASSERT_OK(out.ReadLineContaining("connection lost", absl::Seconds(30)));
  ASSERT_OK(server_.Start(ServerHarness::Port::kSameGrpcPort));
  ASSERT_OK(out.ReadLineContaining("reconnected", absl::Seconds(30)));

  ASSERT_EQ(Tunectl({"cancel", id}).exit_code, 0);
  ASSERT_OK(out.ReadLineContaining("CANCELLED", absl::Seconds(30)));
  absl::StatusOr<ExitStatus> ended = (*watch)->Wait(absl::Seconds(30));
  ASSERT_OK(ended);
  EXPECT_TRUE(ended->exited) << ended->ToString();
  EXPECT_EQ(ended->code, kExitCancelled) << ended->ToString();
}

TEST_F(TunectlTest, SubmitWaitPrintsTheIdThenWatchesTheJob) {
  absl::StatusOr<std::unique_ptr<ChildProcess>> submit = server_.StartTunectl(
      {"submit", "--model", "model", "--train", "train.jsonl", "--name", "waited", "--wait"});
  ASSERT_OK(submit);
  LineReader out((*submit)->stdout_fd());
  absl::StatusOr<std::string> id = out.ReadLine(absl::Seconds(30));
  ASSERT_OK(id);
  ASSERT_OK(out.ReadLineContaining("QUEUED", absl::Seconds(30)));
  ASSERT_EQ(Tunectl({"cancel", *id}).exit_code, 0);
  ASSERT_OK(out.ReadLineContaining("CANCELLED", absl::Seconds(30)));
  absl::StatusOr<ExitStatus> ended = (*submit)->Wait(absl::Seconds(30));
  ASSERT_OK(ended);
  EXPECT_EQ(ended->code, kExitCancelled) << ended->ToString();
}

TEST(TunectlAuthTest, TokenFromFlagOrEnvironmentIsSentAndChecked) {
  ServerHarness server;
  const std::string tokens = server.temp_dir() + "/tokens";
  ASSERT_OK(testing::WriteFile(tokens, "s3cret team-a\n"));
  server.options().extra_args = {"--tokens-file", tokens};
  ASSERT_OK(server.Start());

  absl::StatusOr<CommandResult> none = server.RunTunectl({"list"});
  ASSERT_OK(none);
  EXPECT_EQ(none->exit_code, kExitError) << none->ToString();
  EXPECT_THAT(none->stderr_text, HasSubstr("UNAUTHENTICATED")) << none->ToString();

  absl::StatusOr<CommandResult> wrong = server.RunTunectl({"list", "--token", "guess"});
  ASSERT_OK(wrong);
  EXPECT_EQ(wrong->exit_code, kExitError) << wrong->ToString();
  EXPECT_THAT(wrong->stderr_text, HasSubstr("PERMISSION_DENIED")) << wrong->ToString();

  absl::StatusOr<CommandResult> flag = server.RunTunectl({"list", "--token", "s3cret"});
  ASSERT_OK(flag);
  EXPECT_EQ(flag->exit_code, 0) << flag->ToString();

  absl::StatusOr<CommandResult> env =
      server.RunTunectl({"list"}, absl::Seconds(60), {{"TUNELEDGER_TOKEN", "s3cret"}});
  ASSERT_OK(env);
  EXPECT_EQ(env->exit_code, 0) << env->ToString();
}

// Issue 10.2: a server with --tls-cert, --tls-key and --tls-client-ca. tunectl needs --tls-ca
// (or $TUNELEDGER_TLS_CA); a remote worker needs the CA and a client certificate; the server's
// own local worker needs neither (it dials a private Unix socket: server/main.cc).
TEST(TunectlTlsTest, TunectlAndWorkersDialWithTlsAndPlaintextIsRefused) {
  testing::ServerHarnessOptions options;
  options.worker_token = "tls-worker-token";
  ServerHarness server(options);
  absl::StatusOr<testing::TestCertificates> certs =
      testing::MakeTestCertificates(server.temp_dir() + "/tls");
  ASSERT_OK(certs);
  // The real agent with the fake trainer (the server passes --server, --work-dir, ...).
  const std::string wrapper = server.temp_dir() + "/worker.sh";
  ASSERT_OK(testing::WriteFile(
      wrapper, absl::StrCat("#!/bin/sh\nexec ", testing::BinaryPath("tuneledger-worker"),
                            " \"$@\" --trainer ", TUNELEDGER_SOURCE_DIR,
                            "/tests/worker/testdata/fake_trainer.sh\n")));
  ASSERT_EQ(chmod(wrapper.c_str(), 0755), 0);
  server.options().extra_args = {"--tls-cert",      certs->server_cert,
                                 "--tls-key",       certs->server_key,
                                 "--tls-client-ca", certs->ca,
                                 "--local-workers", "1",
                                 "--work-dir",      server.temp_dir() + "/work",
                                 "--worker-binary", wrapper};
  ASSERT_OK(server.Start());

  absl::StatusOr<CommandResult> plaintext = server.RunTunectl({"list"});
  ASSERT_OK(plaintext);
  EXPECT_EQ(plaintext->exit_code, kExitError) << plaintext->ToString();
  EXPECT_THAT(plaintext->stderr_text, HasSubstr("cannot reach tuneledger-server at"));
  EXPECT_THAT(plaintext->stderr_text, HasSubstr("needs --tls-ca FILE"));
  absl::StatusOr<CommandResult> missing_ca =
      server.RunTunectl({"list", "--tls-ca", server.temp_dir() + "/no-such-ca.pem"});
  ASSERT_OK(missing_ca);
  EXPECT_EQ(missing_ca->exit_code, kExitUsage) << missing_ca->ToString();
  EXPECT_THAT(missing_ca->stderr_text, HasSubstr("--tls-ca: cannot read"));
  absl::StatusOr<CommandResult> from_env = server.RunTunectl(
      {"list", "--output", "json"}, absl::Seconds(60), {{"TUNELEDGER_TLS_CA", certs->ca}});
  ASSERT_OK(from_env);
  EXPECT_EQ(from_env->exit_code, 0) << from_env->ToString();

  // A worker on "another machine": the worker listener, the CA, its client certificate.
  ChildProcessOptions remote;
  remote.argv = {testing::BinaryPath("tuneledger-worker"),
                 "--server",
                 server.worker_address(),
                 "--tls-ca",
                 certs->ca,
                 "--tls-cert",
                 certs->client_cert,
                 "--tls-key",
                 certs->client_key,
                 "--work-dir",
                 server.temp_dir() + "/work",
                 "--price-per-gpu-hour",
                 "1",
                 "--data-root",
                 server.temp_dir(),
                 "--name",
                 "remote-mtls",
                 "--trainer",
                 std::string(TUNELEDGER_SOURCE_DIR) + "/tests/worker/testdata/fake_trainer.sh"};
  remote.env = {{"TUNELEDGER_WORKER_TOKEN", "tls-worker-token"}};
  remote.stdout_mode = StdioMode::kFile;
  remote.stdout_path = server.temp_dir() + "/remote-worker.log";
  remote.stderr_mode = StdioMode::kFile;
  remote.stderr_path = remote.stdout_path;
  remote.parent_death_signal = SIGKILL;
  absl::StatusOr<std::unique_ptr<ChildProcess>> remote_worker = ChildProcess::Start(remote);
  ASSERT_OK(remote_worker);

  // Both workers register: `tunectl workers` over TLS lists them.
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  std::string listed;
  while (absl::Now() < deadline) {
    absl::StatusOr<CommandResult> workers =
        server.RunTunectl({"workers", "--output", "json", "--tls-ca", certs->ca});
    ASSERT_OK(workers);
    ASSERT_EQ(workers->exit_code, 0) << workers->ToString();
    listed = workers->stdout_text;
    if (listed.find("local-0") != std::string::npos &&
        listed.find("remote-mtls") != std::string::npos) {
      break;
    }
    ASSERT_FALSE((*remote_worker)->Wait(absl::Milliseconds(200)).ok())
        << "the remote worker exited: " << testing::ReadFile(remote.stdout_path).value_or("");
  }
  EXPECT_THAT(listed, HasSubstr("local-0")) << server.LogTail();
  EXPECT_THAT(listed, HasSubstr("remote-mtls"))
      << testing::ReadFile(remote.stdout_path).value_or("");
  (*remote_worker)->Terminate(absl::Seconds(10));
}

TEST(TunectlServerAddressTest, TakenFromTheEnvironmentWithoutServerFlag) {
  ServerHarness server;
  ASSERT_OK(server.Start());
  ChildProcessOptions child;
  child.argv = {testing::BinaryPath("tunectl"), "workers", "--output", "json"};
  child.unset_env = {"TUNELEDGER_TOKEN"};
  child.env = {{"TUNELEDGER_SERVER", server.grpc_address()}};
  absl::StatusOr<CompletedProcess> done = ChildProcess::RunToCompletion(child, absl::Seconds(60));
  ASSERT_OK(done);
  EXPECT_TRUE(done->status.success()) << done->status.ToString() << "\n" << done->stderr_text;
  EXPECT_THAT(done->stdout_text, HasSubstr("\"workers\""));
}

TEST(TunectlHelpTest, HelpExplainsEveryCommandWithoutAServer) {
  ChildProcessOptions child;
  child.argv = {testing::BinaryPath("tunectl"), "--help"};
  absl::StatusOr<CompletedProcess> help = ChildProcess::RunToCompletion(child, absl::Seconds(30));
  ASSERT_OK(help);
  EXPECT_TRUE(help->status.success()) << help->status.ToString();
  for (const char* command : {"submit", "list", "get ID", "watch ID", "cancel ID", "events ID",
                              "cost ID", "pareto", "workers"}) {
    EXPECT_THAT(help->stdout_text, HasSubstr(command));
  }
  child.argv = {testing::BinaryPath("tunectl"), "submit", "--help"};
  absl::StatusOr<CompletedProcess> submit = ChildProcess::RunToCompletion(child, absl::Seconds(30));
  ASSERT_OK(submit);
  EXPECT_TRUE(submit->status.success()) << submit->status.ToString();
  EXPECT_THAT(submit->stdout_text, HasSubstr("--target-modules"));
}

}  // namespace
}  // namespace tuneledger
