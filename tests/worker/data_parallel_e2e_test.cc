// Data-parallel jobs end to end with the real binaries: tuneledger-server with two local CPU
// workers (one "GPU" each), so a job of 2 GPUs needs a gang of both (server/core/scheduler.h),
// each agent starting one tuneledger-train rank (worker/agent/attempt_runner.h) that meet over
// Gloo at rank 0's worker.
//
//   - the gang job trains what the same job on one worker trains (the same final loss and eval
//     loss, the same tokens), billed for 2 GPUs;
//   - killing the rank on the other worker ends the attempt as PREEMPTED (rank 0 says a rank
//     was lost), the gang gathers again and the job resumes from its checkpoint to SUCCEEDED.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/free_port.h"
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
using ::tuneledger::testing::FreePort;
using ::tuneledger::testing::ParseProtoJson;
using ::tuneledger::testing::ServerHarness;
using ::tuneledger::testing::SourcePath;
using ::tuneledger::v1::Job;

constexpr absl::Duration kJobTimeout = absl::Minutes(5);

class DataParallelEndToEndTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(SourcePath("models/tiny-llama/config.json")))
        << "the bundled model is missing: models/build_tiny_llama.sh makes it";
    work_dir_ = server_.temp_dir() + "/work";
    fs::create_directories(work_dir_);
    server_.options().extra_args = {"--local-workers",
                                    "2",
                                    "--work-dir",
                                    work_dir_,
                                    "--price-per-gpu-hour",
                                    "3.6",
                                    "--report-interval",
                                    "500ms",
                                    "--local-rendezvous-port-base",
                                    absl::StrCat(std::min(FreePort(), 60000))};
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

  void WaitForWorkers(int count) {
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (absl::Now() < deadline) {
      const CommandResult workers = Tunectl({"--output", "json", "workers"});
      if (ParseProtoJson<v1::ListWorkersResponse>(workers.stdout_text).workers_size() >= count) {
        return;
      }
      absl::SleepFor(absl::Milliseconds(200));
    }
    ADD_FAILURE() << "the local workers never registered";
  }

  // The demo task on the bundled model with LoRA dropout; returns the job id.
  std::string Submit(int gpus, int steps, int checkpoint_every) {
    const CommandResult result = Tunectl({"--output",
                                          "json",
                                          "submit",
                                          "--model",
                                          SourcePath("models/tiny-llama"),
                                          "--train",
                                          SourcePath("models/demo/train.jsonl"),
                                          "--valid",
                                          SourcePath("models/demo/valid.jsonl"),
                                          "--gpus",
                                          absl::StrCat(gpus),
                                          "--max-steps",
                                          absl::StrCat(steps),
                                          "--batch-size",
                                          "8",
                                          "--seq-len",
                                          "64",
                                          "--lora-dropout",
                                          "0.1",
                                          "--eval-every",
                                          absl::StrCat(steps),
                                          "--checkpoint-every",
                                          absl::StrCat(checkpoint_every),
                                          "--seed",
                                          "77",
                                          "--lr",
                                          "0.003"});
    EXPECT_EQ(result.exit_code, 0) << result.ToString();
    const nlohmann::json response =
        nlohmann::json::parse(result.stdout_text, nullptr, /*allow_exceptions=*/false);
    return response.is_object() ? response.value("id", "") : "";
  }

  v1::CostReport Cost(const std::string& id) {
    return ParseProtoJson<v1::CostReport>(Tunectl({"--output", "json", "cost", id}).stdout_text);
  }

  Job Get(const std::string& id) {
    return ParseProtoJson<Job>(Tunectl({"--output", "json", "get", id}).stdout_text);
  }

  Job WaitForEnd(const std::string& id) {
    const absl::Time deadline = absl::Now() + kJobTimeout;
    Job job;
    while (absl::Now() < deadline) {
      job = Get(id);
      if (job.state() == Job::SUCCEEDED || job.state() == Job::FAILED ||
          job.state() == Job::CANCELLED) {
        break;
      }
      absl::SleepFor(absl::Milliseconds(300));
    }
    return job;
  }

  ServerHarness server_;
  std::string work_dir_;
};

TEST_F(DataParallelEndToEndTest, AGangOfTwoWorkersTrainsWhatOneWorkerTrains) {
  ASSERT_OK(server_.Start());
  WaitForWorkers(2);
  const std::string single = Submit(/*gpus=*/1, /*steps=*/12, /*checkpoint_every=*/0);
  const Job one = WaitForEnd(single);
  ASSERT_EQ(one.state(), Job::SUCCEEDED) << one.DebugString();
  const std::string gang = Submit(/*gpus=*/2, /*steps=*/12, /*checkpoint_every=*/0);
  const Job two = WaitForEnd(gang);
  ASSERT_EQ(two.state(), Job::SUCCEEDED) << two.DebugString();

  EXPECT_EQ(two.progress().tokens(), one.progress().tokens());
  EXPECT_NEAR(two.progress().loss(), one.progress().loss(), 1e-4 * one.progress().loss());
  EXPECT_NEAR(two.progress().eval_loss(), one.progress().eval_loss(),
              1e-4 * one.progress().eval_loss());
  const v1::CostReport bill = Cost(gang);
  ASSERT_EQ(bill.attempts_size(), 1) << bill.DebugString();
  EXPECT_EQ(bill.attempts(0).gpus(), 2) << "billed for every GPU of the gang";
  // Rank 1 ran on the other worker and wrote its own log into the shared attempt folder.
  EXPECT_TRUE(fs::exists(absl::StrCat(work_dir_, "/jobs/", gang, "/attempt-1/train-rank1.log")));
}

TEST_F(DataParallelEndToEndTest, AKilledRankRequeuesTheGangWhichResumesFromItsCheckpoint) {
  server_.options().env["TUNELEDGER_TRAIN_MIN_STEP_SECONDS"] = "0.4";
  ASSERT_OK(server_.Start());
  WaitForWorkers(2);
  const std::string id = Submit(/*gpus=*/2, /*steps=*/16, /*checkpoint_every=*/4);
  // Past the first checkpoint, kill rank 1 (the other worker's trainer).
  const absl::Time deadline = absl::Now() + kJobTimeout;
  while (absl::Now() < deadline && Get(id).progress().step() < 6) {
    absl::SleepFor(absl::Milliseconds(200));
  }
  ASSERT_GE(Get(id).progress().step(), 6);
  const std::string out = absl::StrCat(work_dir_, "/jobs/", id, "/attempt-1");
  ASSERT_EQ(std::system(("pkill -KILL -f -- '[-]-out " + out + " --rank=1 '").c_str()), 0);

  const Job job = WaitForEnd(id);
  ASSERT_EQ(job.state(), Job::SUCCEEDED) << job.DebugString();
  const v1::CostReport bill = Cost(id);
  ASSERT_GE(bill.attempts_size(), 2) << bill.DebugString();
  EXPECT_EQ(bill.attempts(0).state(), "PREEMPTED") << bill.DebugString();
  const CommandResult events = Tunectl({"events", id});
  EXPECT_THAT(events.stdout_text, HasSubstr("a rank was lost")) << events.ToString();
  EXPECT_THAT(events.stdout_text, HasSubstr("resuming from")) << events.ToString();
}

}  // namespace
}  // namespace tuneledger
