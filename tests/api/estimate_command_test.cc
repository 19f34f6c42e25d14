// tunectl's estimate path end to end in-process: the command line parsed against the command
// table, RunCommand, JobClient over real gRPC to the FakeJobService: `estimate` and
// `submit --dry-run` (one spec builder, nothing submitted), the estimate `submit` prints beside
// the id, and `cost --card`.
#include <sstream>
#include <string>
#include <vector>

#include "client/cli_args.h"
#include "client/commands.h"
#include "client/exit_codes.h"
#include "client/job_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/api/fake_job_service.h"

namespace tuneledger::client {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::tuneledger::client::testing::FakeServer;

struct Ran {
  int exit_code = -1;
  std::string out;
  std::string err;
};

Ran RunTunectl(const FakeServer& server, const std::vector<std::string>& args) {
  Ran ran;
  absl::StatusOr<CommandLine> line = ParseCommandLine(args);
  EXPECT_TRUE(line.ok()) << line.status();
  if (!line.ok()) return ran;
  JobClient::Options options;
  options.address = server.address();
  JobClient client(options);
  std::ostringstream out;
  std::ostringstream err;
  CommandEnvironment env;
  env.client = &client;
  env.out = &out;
  env.err = &err;
  env.cwd = "/home/me";
  ran.exit_code = RunCommand(*line, env);
  ran.out = out.str();
  ran.err = err.str();
  return ran;
}

tuneledger::v1::JobEstimate SampleEstimate() {
  tuneledger::v1::JobEstimate estimate;
  estimate.set_examples(2400);
  estimate.set_total_steps(100);
  estimate.set_tokens_to_train(150000);
  estimate.set_tokens_counted(true);
  estimate.set_tokens_basis("counted: tokenized all 2400 examples");
  estimate.set_model_params(820736);
  estimate.set_model_shape("hidden=128 layers=4");
  tuneledger::v1::WorkerClassEstimate* cpu = estimate.add_classes();
  cpu->set_accelerator("cpu");
  cpu->set_price_per_gpu_hour(3.6);
  cpu->set_workers(2);
  cpu->set_gpus(1);
  cpu->set_tokens_per_second(12000);
  cpu->set_past_jobs(3);
  cpu->set_seconds(12.5);
  cpu->set_gpu_hours(12.5 / 3600);
  cpu->set_usd(0.0125);
  cpu->set_basis("measured: 12000 tokens trained per billed second");
  tuneledger::v1::WorkerClassEstimate* gpu = estimate.add_classes();
  gpu->set_accelerator("NVIDIA A100-SXM4-80GB");
  gpu->set_price_per_gpu_hour(2);
  gpu->set_spot(true);
  gpu->set_workers(1);
  gpu->set_gpus(1);
  gpu->set_tokens_per_second(2000);
  gpu->set_cold_start(true);
  gpu->set_seconds(75);
  gpu->set_gpu_hours(75.0 / 3600);
  gpu->set_usd(75.0 / 3600 * 2);
  gpu->set_basis("cold start (no SUCCEEDED job of this model shape on it yet)");
  estimate.add_notes("A cold start's rate is a FLOPs guess.");
  return estimate;
}

const std::vector<std::string> kSpecFlags = {"--model",       "m",    "--train",         "t.jsonl",
                                             "--batch-size",  "4",    "--max-steps",     "100",
                                             "--select-data", "loss", "--keep-fraction", "0.5"};

std::vector<std::string> Args(std::vector<std::string> head,
                              const std::vector<std::string>& tail = kSpecFlags) {
  head.insert(head.end(), tail.begin(), tail.end());
  return head;
}

TEST(EstimateCommandTest, EstimateSendsSubmitsSpecAndPrintsTokensStepsAndClasses) {
  FakeServer server;
  server.service().SetEstimate(SampleEstimate());
  const Ran ran = RunTunectl(server, Args({"estimate"}));
  ASSERT_EQ(ran.exit_code, kExitOk) << ran.err;
  EXPECT_THAT(server.service().spec_calls(), ElementsAre("EstimateJob"));
  const tuneledger::v1::JobSpec spec = server.service().last_spec();
  EXPECT_EQ(spec.model_path(), "/home/me/m");
  EXPECT_EQ(spec.train_path(), "/home/me/t.jsonl");
  EXPECT_EQ(spec.training().batch_size(), 4);
  EXPECT_EQ(spec.training().data_selection().method(), tuneledger::v1::DataSelection::LOSS);
  EXPECT_THAT(ran.out, AllOf(HasSubstr("tokens to train  150000 (counted)"),
                             HasSubstr("how              counted: tokenized all 2400 examples"),
                             HasSubstr("steps            100"), HasSubstr("Worker classes")));
  // One row per class, cheapest first as the server sent them, each saying where its rate is
  // from.
  EXPECT_THAT(ran.out, HasSubstr("ACCELERATOR            $/GPU-HOUR  MARKET     WORKERS  GPUS  "
                                 "TOKENS/S  RATE FROM     TIME  GPU-HOURS    USD"));
  EXPECT_THAT(ran.out, HasSubstr("cpu                         $3.60  on-demand        2     1     "
                                 "12.0k  3 past jobs    13s     0.0035  $0.01"));
  EXPECT_THAT(ran.out, HasSubstr("NVIDIA A100-SXM4-80GB       $2.00  spot             1     1     "
                                 "2.00k  cold start   1m15s     0.0208  $0.04"));
  EXPECT_LT(ran.out.find("  cpu "), ran.out.find("  NVIDIA A100"));
  EXPECT_THAT(ran.out, HasSubstr("- cpu $3.60 on-demand: measured: 12000 tokens"));
  EXPECT_THAT(ran.out, HasSubstr("- A cold start's rate is a FLOPs guess."));
  EXPECT_EQ(ran.err, "");

  const Ran json = RunTunectl(server, Args({"--output", "json", "estimate"}));
  ASSERT_EQ(json.exit_code, kExitOk) << json.err;
  EXPECT_THAT(json.out, AllOf(HasSubstr(R"("tokens_to_train":"150000")"),
                              HasSubstr(R"("cold_start":true)"), HasSubstr(R"("past_jobs":3)")));
}

TEST(EstimateCommandTest, SubmitDryRunEstimatesAndSubmitsNothing) {
  FakeServer server;
  server.service().SetEstimate(SampleEstimate());
  const Ran ran = RunTunectl(server, Args({"submit", "--dry-run"}));
  ASSERT_EQ(ran.exit_code, kExitOk) << ran.err;
  EXPECT_THAT(server.service().spec_calls(), ElementsAre("EstimateJob"));
  EXPECT_EQ(server.service().last_spec().training().data_selection().keep_fraction(), 0.5);
  EXPECT_THAT(ran.out, HasSubstr("Worker classes (cheapest first)"));

  const Ran waiting = RunTunectl(server, Args({"submit", "--dry-run", "--wait"}));
  EXPECT_EQ(waiting.exit_code, kExitUsage);
  EXPECT_THAT(waiting.err, HasSubstr("--wait: a --dry-run submits nothing to wait for"));
  EXPECT_THAT(server.service().spec_calls(), ElementsAre("EstimateJob")) << "nothing more sent";
}

TEST(EstimateCommandTest, WithoutModelOrTrainEstimateIsAUsageErrorAndAsksNothing) {
  FakeServer server;
  const Ran ran = RunTunectl(server, {"estimate", "--train", "t.jsonl"});
  EXPECT_EQ(ran.exit_code, kExitUsage);
  EXPECT_THAT(ran.err, HasSubstr("--model"));
  EXPECT_THAT(server.service().spec_calls(), IsEmpty());
}

TEST(EstimateCommandTest, SubmitPrintsTheIdAloneOnStdoutAndTheEstimateOnOneLineOfStderr) {
  FakeServer server;
  tuneledger::v1::SubmitJobResponse response;
  response.mutable_job()->set_id("42");
  *response.mutable_estimate() = SampleEstimate();
  server.service().SetSubmitResponse(response);
  const Ran ran = RunTunectl(server, Args({"submit"}));
  ASSERT_EQ(ran.exit_code, kExitOk) << ran.err;
  EXPECT_THAT(server.service().spec_calls(), ElementsAre("SubmitJob"));
  EXPECT_EQ(ran.out, "42\n") << "ID=$(tunectl submit ...) still gets the id alone";
  EXPECT_EQ(ran.err,
            "estimate: 150k tokens (counted), 100 steps; cheapest $0.01 on cpu at $3.60/GPU-hour "
            "(13s, 3 past jobs)\n");

  // json: the fields it always had, and the estimate beside them.
  const Ran json = RunTunectl(server, Args({"--output", "json", "submit"}));
  ASSERT_EQ(json.exit_code, kExitOk) << json.err;
  EXPECT_THAT(json.out, AllOf(HasSubstr(R"("id":"42")"), HasSubstr(R"("deduplicated":false)"),
                              HasSubstr(R"("estimate":{"examples":"2400")")));
  EXPECT_EQ(json.err, "");
}

TEST(EstimateCommandTest, CostCardPrintsTheCardVerbatim) {
  FakeServer server;
  tuneledger::v1::CostReport report;
  report.set_job_id("7");
  report.set_compute_usd(1.25);
  const std::string card = "# Cost of job 7\n\n| attempt | usd |\n| 1 | $1.25 |\n";
  report.set_card_markdown(card);
  server.service().SetCostReport(report);
  const Ran ran = RunTunectl(server, {"cost", "7", "--card"});
  ASSERT_EQ(ran.exit_code, kExitOk) << ran.err;
  EXPECT_EQ(ran.out, card);
  const Ran table = RunTunectl(server, {"cost", "7"});
  ASSERT_EQ(table.exit_code, kExitOk) << table.err;
  EXPECT_THAT(table.out, AllOf(HasSubstr("Cost report for job 7"), Not(HasSubstr("# Cost"))));
}

}  // namespace
}  // namespace tuneledger::client
