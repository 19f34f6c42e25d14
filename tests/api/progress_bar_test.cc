#include "client/progress_bar.h"

#include <string>
#include <vector>

#include "client/value_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tuneledger::client {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using tuneledger::v1::Job;

Job RunningJob() {
  Job job;
  job.set_id("7");
  job.set_state(Job::RUNNING);
  tuneledger::v1::Progress* p = job.mutable_progress();
  p->set_step(120);
  p->set_total_steps(500);
  p->set_ratio(0.24);
  p->set_loss(2.34121);
  p->set_tokens_per_second(1234);
  p->set_elapsed_seconds(60);
  p->set_eta_seconds(192);
  job.mutable_cost()->set_accrued_usd(0.42);
  job.mutable_cost()->set_budget_usd(5);
  return job;
}

TEST(ValueFormatTest, Usd) {
  EXPECT_EQ(FormatUsd(0), "$0.00");
  EXPECT_EQ(FormatUsd(0.0042), "$0.0042");
  EXPECT_EQ(FormatUsd(12.346), "$12.35");
  EXPECT_EQ(FormatUsd(1234.5), "$1,234.50");
  EXPECT_EQ(FormatUsd(1200000), "$1,200,000.00");
  EXPECT_EQ(FormatUsd(-3), "-$3.00");
}

TEST(ValueFormatTest, UsdColumnsUseOneFormatForEveryAmount) {
  // Below one cent 2 decimals would round an amount away, so the whole column takes 4: never
  // "$0.0099" above "$0.01".
  EXPECT_EQ(FormatUsdColumn({0.0099, 0.01, 12.5}),
            (std::vector<std::string>{"$0.0099", "$0.0100", "$12.5000"}));
  EXPECT_EQ(FormatUsdColumn({0, 0.01, 1234.5}),
            (std::vector<std::string>{"$0.00", "$0.01", "$1,234.50"}));
  EXPECT_EQ(UsdDecimals({}), 2);
  EXPECT_EQ(UsdDecimals({0, -0.004}), 4);
  EXPECT_EQ(FormatUsd(0.5, 4), "$0.5000");
}

TEST(ValueFormatTest, Duration) {
  EXPECT_EQ(FormatDuration(0), "0s");
  // A run shorter than 10 s keeps its tenths rather than read as "0s".
  EXPECT_EQ(FormatDuration(0.278), "0.3s");
  EXPECT_EQ(FormatDuration(5), "5.0s");
  EXPECT_EQ(FormatDuration(9.96), "10s");
  EXPECT_EQ(FormatDuration(45.4), "45s");
  EXPECT_EQ(FormatDuration(192), "3m12s");
  EXPECT_EQ(FormatDuration(3900), "1h05m");
  EXPECT_EQ(FormatDuration(2 * 86400 + 3 * 3600 + 59), "2d03h");
  EXPECT_EQ(FormatDuration(-1), "--");
  EXPECT_EQ(FormatDuration(1.0 / 0.0), "--");
}

TEST(ProgressLineTest, CostAndBudgetShareOneMoneyFormat) {
  Job job = RunningJob();
  job.mutable_cost()->set_accrued_usd(0.0042);
  job.mutable_cost()->set_budget_usd(1);
  EXPECT_THAT(FormatProgressLine(job, {}), HasSubstr(" $0.0042/$1.0000 "));
}

TEST(ValueFormatTest, CountsPercentsReals) {
  EXPECT_EQ(FormatCount(137), "137");
  EXPECT_EQ(FormatCount(1234), "1.23k");
  EXPECT_EQ(FormatCount(45.6e6), "45.6M");
  EXPECT_EQ(FormatCount(321e9), "321G");
  EXPECT_EQ(FormatPercent(0.5), "50%");
  EXPECT_EQ(FormatPercent(0.125), "12.5%");
  EXPECT_EQ(FormatPercent(0), "0%");
  EXPECT_EQ(FormatPercent(3.45 / 5000003.45), "0.000069%");
  EXPECT_EQ(FormatReal(2.34121), "2.3412");
  EXPECT_EQ(FormatReal(0.0000123), "1.230e-05");
  EXPECT_EQ(FormatReal(0.0 / 0.0), "nan");
  EXPECT_EQ(DisplayWidth("caf\xc3\xa9"), 4u);
}

TEST(EtaTest, PrefersTheTrainersEstimate) {
  tuneledger::v1::Progress p;
  p.set_eta_seconds(30);
  p.set_ratio(0.5);
  p.set_elapsed_seconds(1000);
  EXPECT_DOUBLE_EQ(EstimateEtaSeconds(p), 30);
}

// Elapsed time includes loading the model: extrapolating from it gave 5m56s for a job that
// took under a minute. The ETA is the server's, or "measuring".
TEST(EtaTest, UnknownUntilTheServerMeasuredARateAndZeroWhenDone) {
  tuneledger::v1::Progress p;
  EXPECT_LT(EstimateEtaSeconds(p), 0);
  p.set_ratio(0.25);
  p.set_elapsed_seconds(100);
  EXPECT_LT(EstimateEtaSeconds(p), 0) << "no guess from elapsed time";
  EXPECT_EQ(EtaText(p), "measuring");
  p.set_eta_seconds(42);
  EXPECT_EQ(EtaText(p), "42s");
  p.clear_eta_seconds();
  p.set_ratio(1);
  EXPECT_EQ(EstimateEtaSeconds(p), 0);
}

TEST(FormatBarTest, FillsInProportionAndKeepsItsWidth) {
  EXPECT_EQ(FormatBar(0, 12), "[..........]");
  EXPECT_EQ(FormatBar(0.5, 12), "[#####.....]");
  EXPECT_EQ(FormatBar(1, 12), "[##########]");
  EXPECT_EQ(FormatBar(2, 12), "[##########]");
  EXPECT_EQ(FormatBar(-1, 12), "[..........]");
  EXPECT_EQ(FormatBar(0.24, 102).size(), 102u);
}

TEST(FormatProgressLineTest, RunningJobShowsEveryPart) {
  const std::string line = FormatProgressLine(RunningJob(), {});
  EXPECT_EQ(line, "job 7 RUNNING step 120/500 (24%) loss 2.3412 1.23k tok/s $0.42/$5.00 ETA 3m12s");
}

TEST(FormatProgressLineTest, WideTerminalDrawsABar) {
  ProgressLineOptions options;
  options.width = 120;
  options.draw_bar = true;
  const std::string line = FormatProgressLine(RunningJob(), options);
  EXPECT_THAT(line, HasSubstr("job 7 RUNNING [#######"));
  EXPECT_THAT(line, HasSubstr("ETA 3m12s"));
  EXPECT_LE(line.size(), 120u) << line;
}

TEST(FormatProgressLineTest, NeverExceedsTheWidthAndDropsLeastImportantFirst) {
  ProgressLineOptions options;
  options.draw_bar = true;
  for (size_t width = 1; width <= 140; ++width) {
    options.width = width;
    const std::string line = FormatProgressLine(RunningJob(), options);
    EXPECT_LE(DisplayWidth(line), width) << "width " << width << ": '" << line << "'";
  }
  options.width = 60;
  const std::string narrow = FormatProgressLine(RunningJob(), options);
  // At 60 columns the step, cost and ETA stay; throughput goes before them.
  EXPECT_THAT(narrow, HasSubstr("step 120/500"));
  EXPECT_THAT(narrow, HasSubstr("$0.42/$5.00"));
  EXPECT_THAT(narrow, HasSubstr("ETA"));
  EXPECT_THAT(narrow, Not(HasSubstr("tok/s")));
}

TEST(FormatProgressLineTest, DataSelectionScoringShowsExamplesScoredNotSteps) {
  Job job;
  job.set_id("9");
  job.set_state(Job::RUNNING);
  tuneledger::v1::Progress* p = job.mutable_progress();
  p->set_phase(tuneledger::v1::Progress::SCORING);
  p->set_scored_examples(240);
  p->set_total_examples(400);
  p->set_ratio(0.6);
  job.mutable_cost()->set_accrued_usd(0.05);
  EXPECT_EQ(FormatProgressLine(job, {}), "job 9 RUNNING scoring data 240/400 examples (60%) $0.05");
  ProgressLineOptions options;
  options.width = 100;
  options.draw_bar = true;
  EXPECT_THAT(FormatProgressLine(job, options), HasSubstr("job 9 RUNNING [######"));
}

TEST(FormatProgressLineTest, QueuedAndFinishedJobs) {
  Job job;
  job.set_id("3");
  job.set_state(Job::QUEUED);
  EXPECT_EQ(FormatProgressLine(job, {}), "job 3 QUEUED (waiting for a worker) $0.00");
  job.set_attempts(1);
  EXPECT_THAT(FormatProgressLine(job, {}), HasSubstr("(requeued after attempt 1)"));

  Job done = RunningJob();
  done.set_state(Job::CANCELLED);
  done.set_reason(Job::BUDGET_EXCEEDED);
  ProgressLineOptions options;
  options.width = 200;
  options.draw_bar = true;
  const std::string line = FormatProgressLine(done, options);
  EXPECT_THAT(line, HasSubstr("CANCELLED (BUDGET_EXCEEDED)"));
  EXPECT_THAT(line, Not(HasSubstr("ETA")));
  EXPECT_THAT(line, Not(HasSubstr("[#")));  // no bar once the job ended
}

}  // namespace
}  // namespace tuneledger::client
