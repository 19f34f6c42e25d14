// The pre-flight estimate end to end with the real binaries: tuneledger-server with one local
// worker (tuneledger-worker running tuneledger-train on the bundled tiny model) and tunectl.
//
//   - the first job of a spec is a cold start, recorded with the job and counted from the data;
//   - once it SUCCEEDED, `tunectl estimate` of the same spec uses its measured rate (1 past job);
//   - a second identical job's cost report carries that estimate, and the compute billed is
//     within +-50% of it (the tight 20% is bench/estimate_accuracy's, not a test's).
#include <google/protobuf/util/json_util.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/proto_json.h"
#include "tests/testing/server_harness.h"
#include "tests/testing/source_path.h"
#include "tests/testing/status_matchers.h"
#include "tuneledger/v1/jobs.pb.h"

namespace tuneledger {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::tuneledger::testing::CommandResult;
using ::tuneledger::testing::ServerHarness;
using ::tuneledger::v1::Job;

constexpr absl::Duration kJobTimeout = absl::Minutes(4);
// Every step lasts at least this long, so that two runs of the job bill similar times even on a
// busy shared machine: a tiny-model step takes tens of milliseconds alone, but up to a second
// when other trainers crowd LibTorch's threads off two cores (40 steps of the same job took 6.5 s
// in one run and 54 s in the next; with this floor, kSteps steps take kSteps seconds or a little
// more, and start-up is a small part).
constexpr int kSteps = 12;
constexpr char kMinStepSeconds[] = "1.0";

using ::tuneledger::testing::ParseProtoJson;
using ::tuneledger::testing::SourcePath;

class EstimateEndToEndTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(SourcePath("models/tiny-llama/config.json")))
        << "the bundled model is missing: models/build_tiny_llama.sh makes it";
    const std::string work_dir = server_.temp_dir() + "/work";
    fs::create_directories(work_dir);
    server_.options().extra_args = {"--local-workers",      "1",   "--work-dir",        work_dir,
                                    "--price-per-gpu-hour", "3.6", "--report-interval", "500ms"};
    server_.options().env["TUNELEDGER_TRAIN_MIN_STEP_SECONDS"] = kMinStepSeconds;
  }

  void TearDown() override {
    if (server_.running()) server_.Stop(absl::Seconds(30)).IgnoreError();
    if (HasFailure()) std::cerr << "---- server log ----\n" << server_.LogTail(20000) << "\n";
  }

  CommandResult Tunectl(const std::vector<std::string>& args) {
    absl::StatusOr<CommandResult> result = server_.RunTunectl(args, absl::Seconds(60));
    EXPECT_OK(result);
    return result.ok() ? *result : CommandResult{};
  }

  // The demo task on the bundled model, small: --output json COMMAND and the spec's flags.
  std::vector<std::string> JobArgs(const std::string& command) {
    return {"--output",
            "json",
            command,
            "--model",
            SourcePath("models/tiny-llama"),
            "--train",
            SourcePath("models/demo/train.jsonl"),
            "--max-steps",
            absl::StrCat(kSteps),
            "--batch-size",
            "4",
            "--seq-len",
            "64",
            "--checkpoint-every",
            "6",
            "--seed",
            "1234",
            "--lr",
            "0.003"};
  }

  void WaitForWorker() {
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (absl::Now() < deadline) {
      const CommandResult workers = Tunectl({"--output", "json", "workers"});
      if (!ParseProtoJson<v1::ListWorkersResponse>(workers.stdout_text).workers().empty()) return;
    }
    ADD_FAILURE() << "the local worker never registered";
  }

  // Submits the job; returns its id and the estimate recorded with it.
  std::string Submit(v1::JobEstimate* estimate) {
    const CommandResult result = Tunectl(JobArgs("submit"));
    EXPECT_EQ(result.exit_code, 0) << result.ToString();
    const nlohmann::json response =
        nlohmann::json::parse(result.stdout_text, nullptr, /*allow_exceptions=*/false);
    EXPECT_TRUE(response.is_object()) << result.ToString();
    if (!response.is_object()) return "";
    *estimate =
        ParseProtoJson<v1::JobEstimate>(response.value("estimate", nlohmann::json()).dump());
    return response.value("id", "");
  }

  Job WaitForSuccess(const std::string& id) {
    const absl::Time deadline = absl::Now() + kJobTimeout;
    Job job;
    while (absl::Now() < deadline) {
      job = ParseProtoJson<Job>(Tunectl({"--output", "json", "get", id}).stdout_text);
      if (job.state() == Job::SUCCEEDED || job.state() == Job::FAILED ||
          job.state() == Job::CANCELLED) {
        break;
      }
    }
    EXPECT_EQ(job.state(), Job::SUCCEEDED) << job.DebugString();
    return job;
  }

  ServerHarness server_;
};

TEST_F(EstimateEndToEndTest, ARepeatOfAFinishedJobIsEstimatedFromItsMeasuredRate) {
  ASSERT_OK(server_.Start());
  WaitForWorker();

  v1::JobEstimate first_estimate;
  const std::string first = Submit(&first_estimate);
  ASSERT_FALSE(first.empty());
  EXPECT_TRUE(first_estimate.tokens_counted()) << first_estimate.tokens_basis();
  EXPECT_EQ(first_estimate.total_steps(), kSteps);
  ASSERT_EQ(first_estimate.classes_size(), 1) << first_estimate.DebugString();
  EXPECT_EQ(first_estimate.classes(0).accelerator(), "cpu");
  EXPECT_TRUE(first_estimate.classes(0).cold_start());
  const Job first_job = WaitForSuccess(first);
  ASSERT_EQ(first_job.state(), Job::SUCCEEDED);
  // The trainer trained exactly the tokens the estimate counted.
  EXPECT_EQ(first_job.progress().tokens(), first_estimate.tokens_to_train());

  const CommandResult estimated = Tunectl(JobArgs("estimate"));
  ASSERT_EQ(estimated.exit_code, 0) << estimated.ToString();
  const auto estimate = ParseProtoJson<v1::JobEstimate>(estimated.stdout_text);
  ASSERT_EQ(estimate.classes_size(), 1) << estimate.DebugString();
  EXPECT_FALSE(estimate.classes(0).cold_start()) << estimate.classes(0).basis();
  EXPECT_EQ(estimate.classes(0).past_jobs(), 1);
  EXPECT_THAT(estimate.classes(0).basis(), HasSubstr(absl::StrCat("jobs ", first)));
  EXPECT_THAT(Tunectl(JobArgs("estimate")).stdout_text, HasSubstr("tokens_to_train"))
      << "estimate stores nothing and can be asked again";

  v1::JobEstimate second_estimate;
  const std::string second = Submit(&second_estimate);
  ASSERT_FALSE(second.empty());
  EXPECT_FALSE(second_estimate.classes(0).cold_start());
  ASSERT_EQ(WaitForSuccess(second).state(), Job::SUCCEEDED);
  const CommandResult cost = Tunectl({"--output", "json", "cost", second});
  ASSERT_EQ(cost.exit_code, 0) << cost.ToString();
  const auto report = ParseProtoJson<v1::CostReport>(cost.stdout_text);
  ASSERT_TRUE(report.has_estimated_usd()) << report.DebugString();
  ASSERT_TRUE(report.has_estimate_error()) << report.DebugString();
  EXPECT_DOUBLE_EQ(report.estimated_usd(), second_estimate.classes(0).usd());
  EXPECT_GT(report.estimate_error(), -0.5) << report.DebugString();
  EXPECT_LT(report.estimate_error(), 0.5) << report.DebugString();
  std::cerr << "estimate " << report.estimated_usd() << " USD, billed " << report.compute_usd()
            << " USD: error " << 100 * report.estimate_error() << "%\n";
  EXPECT_THAT(Tunectl({"cost", second}).stdout_text, HasSubstr("estimated at submit"));
}

}  // namespace
}  // namespace tuneledger
