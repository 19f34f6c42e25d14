#include "client/output_render.h"

#include <string>
#include <tuple>
#include <vector>

#include "client/table.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace tuneledger::client {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using tuneledger::v1::CostReport;
using tuneledger::v1::InheritedCost;
using tuneledger::v1::Job;
using tuneledger::v1::JobEvent;

Job MakeJob(const std::string& id, Job::State state, int priority) {
  Job job;
  job.set_id(id);
  job.set_state(state);
  job.mutable_spec()->set_name("job-" + id);
  job.mutable_spec()->set_priority(priority);
  job.mutable_spec()->set_model_path("/models/tiny");
  job.mutable_cost()->set_accrued_usd(0.5);
  job.mutable_create_time()->set_seconds(1'800'000'000);
  return job;
}

// Splits text into lines (without the newlines).
std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

TEST(TableTest, AlignsColumnsByCodePointsAndTrimsTrailingBlanks) {
  Table table({"ID", "NAME", "COST"});
  table.AlignRight(2);
  table.AddRow({"1", "caf\xc3\xa9", "$1.00"});
  table.AddRow({"12", "x", "$100.00"});
  table.AddRow({"3"});  // short rows are padded
  EXPECT_EQ(table.Render(),
            "ID  NAME     COST\n"
            "1   caf\xc3\xa9    $1.00\n"
            "12  x     $100.00\n"
            "3\n");
  EXPECT_EQ(table.Render(2).substr(0, 4), "  ID");
}

TEST(TableTest, HeaderlessTableRendersOnlyRows) {
  Table table({});
  table.AddRow({"state", "QUEUED"});
  table.AddRow({"priority", "5"});
  EXPECT_EQ(table.Render(), "state     QUEUED\npriority  5\n");
}

TEST(RenderJobListTest, JsonIsOneDocumentWithProtoFieldNamesAndRoundTrips) {
  std::vector<Job> jobs = {MakeJob("2", Job::QUEUED, 9), MakeJob("1", Job::CANCELLED, 1)};
  jobs[1].set_reason(Job::USER);
  const std::string json = RenderJobList(jobs, OutputFormat::kJson);
  EXPECT_EQ(Lines(json).size(), 1u) << json;
  EXPECT_THAT(json, HasSubstr(R"("state":"QUEUED")"));
  EXPECT_THAT(json, HasSubstr(R"("reason":"USER")"));
  EXPECT_THAT(json, HasSubstr(R"("model_path":"/models/tiny")"));  // not "modelPath"
  EXPECT_THAT(json, HasSubstr(R"("next_page_token":"")"));
  tuneledger::v1::ListJobsResponse parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json, &parsed).ok()) << json;
  ASSERT_EQ(parsed.jobs_size(), 2);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(parsed.jobs(1), jobs[1]))
      << "expected: " << jobs[1].ShortDebugString()
      << "\nactual: " << parsed.jobs(1).ShortDebugString();
}

TEST(RenderJobListTest, TableHasAlignedColumnsInServerOrder) {
  std::vector<Job> jobs = {MakeJob("10", Job::QUEUED, 9), MakeJob("9", Job::RUNNING, 100)};
  jobs[1].mutable_progress()->set_step(3);
  jobs[1].mutable_progress()->set_total_steps(40);
  jobs[1].mutable_progress()->set_loss(2.5);
  jobs[1].mutable_cost()->set_budget_usd(2);
  jobs[1].set_worker_id("w-1");
  const std::vector<std::string> lines = Lines(RenderJobList(jobs, OutputFormat::kTable));
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_THAT(lines[0], HasSubstr("ID  NAME    STATE    REASON  PRIO  STEP    LOSS   COST"));
  EXPECT_THAT(lines[1], HasSubstr("10  job-10  QUEUED   -          9     -       -  $0.50"));
  EXPECT_THAT(
      lines[2],
      HasSubstr(" 9  job-9   RUNNING  -        100  3/40  2.5000  $0.50   $2.00    0  w-1"));
  // Columns line up: STATE starts at the same offset on every line.
  EXPECT_EQ(lines[0].find("STATE"), lines[1].find("QUEUED"));
  EXPECT_EQ(lines[0].find("STATE"), lines[2].find("RUNNING"));
  EXPECT_EQ(RenderJobList({}, OutputFormat::kTable), "no jobs\n");
}

TEST(RenderSubmittedTest, TablePrintsOnlyTheIdJsonAnObjectWithIt) {
  tuneledger::v1::SubmitJobResponse response;
  response.mutable_job()->set_id("42");
  EXPECT_EQ(RenderSubmitted(response, OutputFormat::kTable), "42\n");
  const std::string json = RenderSubmitted(response, OutputFormat::kJson);
  EXPECT_THAT(json, HasSubstr(R"("id":"42")"));
  EXPECT_EQ(json.back(), '\n');
}

TEST(RenderJobTest, TableShowsSpecProgressAndCost) {
  Job job = MakeJob("4", Job::RUNNING, 3);
  job.mutable_spec()->mutable_lora()->set_r(16);
  job.mutable_spec()->mutable_lora()->add_target_modules("q_proj");
  job.mutable_spec()->mutable_budget()->set_usd(10);
  job.mutable_spec()->mutable_budget()->add_thresholds(0.5);
  (*job.mutable_spec()->mutable_labels())["team"] = "nlp";
  InheritedCost* cost = job.mutable_spec()->add_inherited_costs();
  cost->set_kind(InheritedCost::BASE_MODEL_PRETRAINING);
  cost->set_usd(1e6);
  cost->set_source("paper");
  job.mutable_cost()->set_budget_usd(10);
  job.mutable_spec()->set_max_attempts(3);
  job.set_attempts(4);
  job.set_failed_attempts(1);
  job.set_preempted_attempts(2);
  const std::string text = RenderJob(job, OutputFormat::kTable);
  EXPECT_THAT(text, HasSubstr("state       RUNNING\n"));
  EXPECT_THAT(text, HasSubstr("attempts    4 (1 lost of 3 allowed, 2 preempted)\n"));
  EXPECT_THAT(text, HasSubstr("model       /models/tiny\n"));
  EXPECT_THAT(text, HasSubstr("r=16 alpha=0 targets=q_proj"));
  EXPECT_THAT(text, HasSubstr("budget $10.00 (5% used)"));
  EXPECT_THAT(text, HasSubstr("budget      $10.00 thresholds 50%\n"));  // policy unset: left out
  EXPECT_THAT(text, HasSubstr("labels      team=nlp\n"));
  EXPECT_THAT(text, HasSubstr("base-model pre-training $1,000,000.00 (source: paper)"));
}

TEST(RenderJobTest, OnlyARunningJobShowsAnEta) {
  Job job = MakeJob("6", Job::RUNNING, 3);
  job.mutable_progress()->set_step(30);
  job.mutable_progress()->set_total_steps(100);
  job.mutable_progress()->set_eta_seconds(192);
  EXPECT_THAT(RenderJob(job, OutputFormat::kTable), HasSubstr(" ETA 3m12s\n"));
  job.set_state(Job::CANCELLED);
  EXPECT_THAT(RenderJob(job, OutputFormat::kTable), Not(HasSubstr("ETA")));
}

TEST(RenderEventsTest, TableDescribesEachEvent) {
  std::vector<JobEvent> events(3);
  events[0].set_seq(1);
  events[0].set_kind(JobEvent::SUBMITTED);
  events[0].set_state(Job::QUEUED);
  events[1].set_seq(2);
  events[1].set_kind(JobEvent::BUDGET_THRESHOLD);
  events[1].set_state(Job::RUNNING);
  events[1].set_threshold(0.8);
  events[1].set_cost_usd(4.01);
  events[2].set_seq(3);
  events[2].set_kind(JobEvent::CANCELLED);
  events[2].set_state(Job::CANCELLED);
  events[2].set_reason(Job::USER);
  events[2].set_message("wrong data");
  const std::vector<std::string> lines = Lines(RenderEvents(events, OutputFormat::kTable));
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_THAT(lines[0], HasSubstr("SEQ"));
  EXPECT_THAT(lines[2], HasSubstr("accrued $4.01 crossed 80% of the budget"));
  // Attempt and step do not apply to a cancel before any attempt: "-", not 0.
  EXPECT_THAT(lines[3], HasSubstr("  3  -     CANCELLED         CANCELLED        -     -  $0.00"));
  EXPECT_THAT(lines[3], HasSubstr("reason USER - wrong data"));
  const std::string json = RenderEvents(events, OutputFormat::kJson);
  EXPECT_THAT(json, HasSubstr(R"("events":[{"seq":"1")"));  // int64 is a string in proto JSON
}

TEST(RenderJobTest, UnsetFieldsAreLeftOutOfJsonAndTable) {
  Job job = MakeJob("4", Job::RUNNING, 3);
  job.mutable_start_time()->set_seconds(1'800'000'100);
  job.mutable_end_time();  // the server sends a zero Timestamp for "not ended"
  job.mutable_spec()->mutable_training()->set_max_steps(100);  // precision, schedule: unset
  job.mutable_spec()->mutable_budget()->set_usd(1);
  const std::string json = RenderJob(job, OutputFormat::kJson);
  EXPECT_THAT(json, Not(HasSubstr("UNSPECIFIED"))) << json;
  EXPECT_THAT(json, Not(HasSubstr("1970-01-01"))) << json;
  EXPECT_THAT(json, Not(HasSubstr(R"("reason")"))) << json;
  EXPECT_THAT(json, Not(HasSubstr(R"("end_time")"))) << json;
  // What is set stays, and so do numbers at zero.
  EXPECT_THAT(json, HasSubstr(R"("state":"RUNNING")")) << json;
  EXPECT_THAT(json, HasSubstr(R"("start_time":"2027-01-15T08:01:40Z")")) << json;
  EXPECT_THAT(json, HasSubstr(R"("attempts":0)")) << json;
  EXPECT_THAT(json, HasSubstr(R"("max_steps":100)")) << json;
  tuneledger::v1::Job parsed;  // still a Job in the proto JSON mapping
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json, &parsed).ok()) << json;
  EXPECT_EQ(parsed.spec().training().max_steps(), 100);

  const std::string text = RenderJob(job, OutputFormat::kTable);
  EXPECT_THAT(text, Not(HasSubstr("UNSPECIFIED"))) << text;
  EXPECT_THAT(text, HasSubstr("ended       -\n")) << text;
  job.mutable_spec()->mutable_training()->set_precision(tuneledger::v1::TrainingConfig::BF16);
  EXPECT_THAT(RenderJob(job, OutputFormat::kTable), HasSubstr(" precision=BF16 "));

  // Nested and repeated messages too: an event log's events without a reason.
  JobEvent event;
  event.set_seq(1);
  event.set_kind(JobEvent::SUBMITTED);
  event.set_state(Job::QUEUED);
  const std::string events = RenderEvents({event}, OutputFormat::kJson);
  EXPECT_THAT(events, Not(HasSubstr("UNSPECIFIED"))) << events;
  EXPECT_THAT(events, Not(HasSubstr("1970-01-01"))) << events;
  EXPECT_THAT(events, HasSubstr(R"("kind":"SUBMITTED")")) << events;
}

TEST(RenderJobListTest, MoneyColumnsUseOneFormat) {
  std::vector<Job> jobs = {MakeJob("2", Job::RUNNING, 0), MakeJob("1", Job::SUCCEEDED, 0)};
  jobs[0].mutable_cost()->set_accrued_usd(0.0099);
  jobs[1].mutable_cost()->set_accrued_usd(0.01);
  jobs[1].mutable_cost()->set_budget_usd(1);
  const std::vector<std::string> lines = Lines(RenderJobList(jobs, OutputFormat::kTable));
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_THAT(lines[1], HasSubstr(" $0.0099 "));
  EXPECT_THAT(lines[2], HasSubstr(" $0.0100  $1.0000 "));
}

TEST(RenderEventsTest, BudgetEventsSayItOnceAndCostIsNeverAProjection) {
  std::vector<JobEvent> events(2);
  events[0].set_seq(7);
  events[0].set_kind(JobEvent::BUDGET_THRESHOLD);
  events[0].set_state(Job::RUNNING);
  events[0].set_threshold(0.5);
  events[0].set_cost_usd(0.5);
  // What the server writes in the message: the same facts again, in another money format.
  events[0].set_message("accrued $0.5000 crossed 50% of the $1.0000 budget");
  events[1].set_seq(8);
  events[1].set_kind(JobEvent::PROJECTED_OVERRUN);
  events[1].set_state(Job::RUNNING);
  events[1].set_cost_usd(0.6);  // what was spent
  events[1].set_value(1.2);     // the projected total
  events[1].set_message("projected total $1.2000 exceeds the $1.0000 budget");

  EXPECT_EQ(DescribeEvent(events[0]), "accrued $0.50 crossed 50% of the budget");
  EXPECT_EQ(DescribeEvent(events[1]), "projected total $1.20 exceeds the budget");
  const std::vector<std::string> lines = Lines(RenderEvents(events, OutputFormat::kTable));
  ASSERT_EQ(lines.size(), 3u);
  // COST, then DETAIL.
  EXPECT_THAT(lines[1], HasSubstr("  $0.50  accrued $0.50 crossed 50% of the budget"));
  // The projection is in DETAIL only; COST holds the accrued cost.
  EXPECT_THAT(lines[2], HasSubstr("  $0.60  projected total $1.20 exceeds the budget"));
}

TEST(RenderProgressHistoryTest, OneRowPerPointAndJsonForPlotting) {
  tuneledger::v1::ProgressHistory history;
  history.set_job_id("4");
  EXPECT_EQ(RenderProgressHistory(history, OutputFormat::kTable), "no progress yet\n");
  for (int step : {10, 20}) {
    tuneledger::v1::Progress* point = history.add_points();
    point->set_step(step);
    point->set_total_steps(20);
    point->set_loss(step == 10 ? 2.5 : 1.25);
    point->set_tokens(step * 100);
  }
  history.mutable_points(1)->set_eval_loss(1.5);
  const std::vector<std::string> lines =
      Lines(RenderProgressHistory(history, OutputFormat::kTable));
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_THAT(lines[0], HasSubstr("EVAL LOSS"));
  EXPECT_THAT(lines[1], HasSubstr("10/20"));
  EXPECT_THAT(lines[1], HasSubstr("2.5"));
  EXPECT_THAT(lines[2], HasSubstr("20/20"));
  EXPECT_THAT(lines[2], HasSubstr("1.5"));
  const std::string json = RenderProgressHistory(history, OutputFormat::kJson);
  EXPECT_THAT(json, HasSubstr(R"("job_id":"4")"));
  EXPECT_THAT(json, HasSubstr(R"("step":20)"));
}

TEST(RenderParetoFrontTest, StarsTheOptimalJobsAndSaysWhatIsLeftOut) {
  tuneledger::v1::ParetoFront front;
  EXPECT_EQ(RenderParetoFront(front, OutputFormat::kTable), "no finished jobs with an eval loss\n");
  for (const auto& [id, usd, loss, optimal] :
       std::vector<std::tuple<std::string, double, double, bool>>{{"3", 1.25, 2.5, true},
                                                                  {"9", 4.0, 2.75, false}}) {
    tuneledger::v1::ParetoPoint* point = front.add_points();
    point->set_job_id(id);
    point->set_name("sweep-" + id);
    point->set_state(Job::SUCCEEDED);
    point->set_total_usd(usd);
    point->set_compute_usd(usd / 2);
    point->set_eval_loss(loss);
    point->set_pareto_optimal(optimal);
  }
  front.set_jobs_without_eval_loss(2);
  const std::vector<std::string> lines = Lines(RenderParetoFront(front, OutputFormat::kTable));
  ASSERT_GE(lines.size(), 5u);
  EXPECT_THAT(lines[0], HasSubstr("EVAL LOSS"));
  EXPECT_THAT(lines[1], ::testing::StartsWith("*"));
  EXPECT_THAT(lines[1], HasSubstr("sweep-3"));
  EXPECT_THAT(lines[1], HasSubstr("2.5"));
  EXPECT_THAT(lines[1], HasSubstr("$1.25"));
  EXPECT_THAT(lines[2], ::testing::StartsWith(" "));
  EXPECT_THAT(lines[2], HasSubstr("$4.00"));
  EXPECT_THAT(lines[4], HasSubstr("1 of 2 jobs are Pareto-optimal"));
  EXPECT_THAT(lines[5], HasSubstr("2 finished jobs are not shown"));
  const std::string json = RenderParetoFront(front, OutputFormat::kJson);
  EXPECT_THAT(json, HasSubstr(R"("pareto_optimal":true)"));
  EXPECT_THAT(json, HasSubstr(R"("jobs_without_eval_loss":2)"));
}

TEST(RenderCostReportTest, TableStatesTheWholeBill) {
  CostReport report;
  report.set_job_id("8");
  report.set_state(Job::SUCCEEDED);
  tuneledger::v1::AttemptCost* a1 = report.add_attempts();
  a1->set_attempt(1);
  a1->set_worker_id("spot-1");
  a1->set_state("PREEMPTED");
  a1->set_gpus(1);
  a1->set_price_per_gpu_hour(0.9);
  a1->set_spot(true);
  a1->set_seconds(1800);
  a1->set_gpu_hours(0.5);
  a1->set_usd(0.45);
  a1->set_wasted_seconds(600);
  a1->set_wasted_usd(0.15);
  tuneledger::v1::AttemptCost* a2 = report.add_attempts();
  a2->set_attempt(2);
  a2->set_worker_id("od-1");
  a2->set_state("SUCCEEDED");
  a2->set_gpus(1);
  a2->set_price_per_gpu_hour(3);
  a2->set_seconds(3600);
  a2->set_gpu_hours(1);
  a2->set_usd(3);
  report.set_compute_usd(3.45);
  report.set_compute_gpu_hours(1.5);
  report.set_spot_usd(0.45);
  report.set_on_demand_usd(3);
  report.set_on_demand_equivalent_usd(4.5);
  report.set_spot_saving_usd(1.05);
  report.set_preemption_waste_usd(0.15);
  report.set_preemption_waste_gpu_hours(600.0 / 3600);
  InheritedCost* inherited = report.add_inherited();
  inherited->set_kind(InheritedCost::BASE_MODEL_PRETRAINING);
  inherited->set_usd(5000000);
  inherited->set_source("Llama 2 paper, table 2");
  report.set_inherited_usd(5000000);
  report.set_total_usd(5000003.45);
  report.set_compute_share(3.45 / 5000003.45);
  report.set_budget_usd(3);
  report.set_overshoot_usd(0.45);
  report.set_projected_usd(3.45);
  report.add_notes("compute is what this service measured");

  const std::string text = RenderCostReport(report, OutputFormat::kTable);
  EXPECT_THAT(text, HasSubstr("Cost report for job 8 (SUCCEEDED)"));
  EXPECT_THAT(text, HasSubstr("spot-1  PREEMPTED"));
  EXPECT_THAT(text, HasSubstr("spot"));
  EXPECT_THAT(text, HasSubstr("on-demand"));
  EXPECT_THAT(text, HasSubstr("30m00s"));
  EXPECT_THAT(text,
              HasSubstr("compute total $3.45 for 1h30m of GPU time (spot $0.45, on-demand $3.00)"));
  EXPECT_THAT(text, HasSubstr("on demand it would have cost $4.50: spot saved $1.05"));
  EXPECT_THAT(text, HasSubstr("preemption waste $0.15 for 10m00s of GPU time"));
  EXPECT_THAT(text, HasSubstr("$0.45  10m00s")) << "the preempted attempt's WASTED column";
  EXPECT_THAT(text, HasSubstr("base-model pre-training  $5,000,000.00  Llama 2 paper, table 2"));
  EXPECT_THAT(text, HasSubstr("total (this model)        $5,000,003.45"));
  EXPECT_THAT(text, HasSubstr("compute share of total        0.000069%"));
  EXPECT_THAT(text, HasSubstr("overshoot                         $0.45"));
  EXPECT_THAT(text, HasSubstr("  - compute is what this service measured"));
  EXPECT_THAT(RenderCostReport(report, OutputFormat::kJson), HasSubstr(R"("overshoot_usd":0.45)"));
}

TEST(RenderCostReportTest, WallAndGpuTimeShareHumanUnits) {
  CostReport report;
  report.set_job_id("9");
  report.set_state(Job::SUCCEEDED);
  tuneledger::v1::AttemptCost* attempt = report.add_attempts();
  attempt->set_attempt(1);
  attempt->set_worker_id("local-1");
  attempt->set_state("SUCCEEDED");
  attempt->set_gpus(1);
  attempt->set_price_per_gpu_hour(0.5);
  attempt->set_seconds(0.278);
  attempt->set_gpu_hours(0.278 / 3600);
  attempt->set_usd(0.5 * 0.278 / 3600);
  report.set_compute_usd(attempt->usd());
  report.set_compute_gpu_hours(attempt->gpu_hours());
  report.set_on_demand_usd(attempt->usd());
  report.set_total_usd(attempt->usd());
  report.set_compute_share(1);
  const std::string text = RenderCostReport(report, OutputFormat::kTable);
  EXPECT_THAT(text, HasSubstr("WALL  GPU TIME")) << text;
  EXPECT_THAT(text, HasSubstr("on-demand  0.3s      0.3s")) << text;
  EXPECT_THAT(text, HasSubstr("for 0.3s of GPU time")) << text;
  EXPECT_THAT(text, Not(HasSubstr("e-0"))) << text;
}

TEST(RenderWorkersTest, TableAndJson) {
  tuneledger::v1::Worker worker;
  worker.set_id("w-1");
  worker.set_hostname("gpu-box");
  worker.set_accelerator("cpu");
  worker.set_gpus(1);
  worker.set_price_per_gpu_hour(0.5);
  worker.set_state(tuneledger::v1::Worker::BUSY);
  worker.set_job_id("3");
  const std::string text = RenderWorkers({worker}, OutputFormat::kTable);
  EXPECT_THAT(text, HasSubstr("w-1  gpu-box  cpu"));
  EXPECT_THAT(text, HasSubstr("on-demand  BUSY"));
  EXPECT_EQ(RenderWorkers({}, OutputFormat::kTable), "no workers\n");
  EXPECT_THAT(RenderWorkers({worker}, OutputFormat::kJson), HasSubstr(R"("workers":[{"id":"w-1")"));
}

TEST(RenderCancelledTest, TableSaysStateAndReason) {
  Job job = MakeJob("6", Job::CANCELLED, 0);
  job.set_reason(Job::USER);
  EXPECT_EQ(RenderCancelled(job, OutputFormat::kTable), "job 6 CANCELLED (reason USER)\n");
  EXPECT_THAT(RenderCancelled(job, OutputFormat::kJson), Not(HasSubstr("\n{")));
}

TEST(RenderCostReportTest, StatesTheEstimateAgainstTheBillScoringAndTheBaseModel) {
  CostReport report;
  report.set_job_id("12");
  report.set_state(Job::SUCCEEDED);
  tuneledger::v1::AttemptCost* attempt = report.add_attempts();
  attempt->set_attempt(1);
  attempt->set_worker_id("w-1");
  attempt->set_state("SUCCEEDED");
  attempt->set_gpus(1);
  attempt->set_price_per_gpu_hour(3.6);
  attempt->set_seconds(100);
  attempt->set_gpu_hours(100.0 / 3600);
  attempt->set_usd(0.1);
  attempt->set_scoring_seconds(20);
  attempt->set_scoring_usd(0.02);
  report.set_compute_usd(0.1);
  report.set_scoring_usd(0.02);
  report.set_scoring_gpu_hours(20.0 / 3600);
  report.mutable_estimate()->set_tokens_to_train(150000);
  report.mutable_estimate()->set_tokens_counted(true);
  report.set_estimated_usd(0.08);
  report.set_estimate_error(0.25);
  report.mutable_base_model()->set_path("/models/tiny-llama");
  report.mutable_base_model()->set_source("HuggingFaceTB/SmolLM2-135M");
  report.mutable_base_model()->set_license("apache-2.0");
  report.mutable_base_model()->set_license_origin("README.md");
  const std::string text = RenderCostReport(report, OutputFormat::kTable);
  EXPECT_THAT(text, HasSubstr("WASTED  SCORING")) << text;
  EXPECT_THAT(text, HasSubstr("-      20s")) << "no waste, 20 s of scoring: " << text;
  EXPECT_THAT(text, HasSubstr("data-selection scoring $0.02 for 20s of GPU time")) << text;
  EXPECT_THAT(text, HasSubstr("estimated at submit $0.08 (150k tokens, counted), billed $0.10: "
                              "+25.0% off the estimate"))
      << text;
  EXPECT_THAT(text, HasSubstr("Base model\n  HuggingFaceTB/SmolLM2-135M, licence apache-2.0 (from "
                              "README.md); folder /models/tiny-llama"))
      << text;

  // While the job runs the error is not known yet; without an estimate nothing is said.
  report.set_state(Job::RUNNING);
  report.clear_estimate_error();
  EXPECT_THAT(RenderCostReport(report, OutputFormat::kTable),
              HasSubstr("billed $0.10 so far: the error is known once the job has ended"));
  report.clear_estimated_usd();
  report.clear_base_model();
  const std::string without = RenderCostReport(report, OutputFormat::kTable);
  EXPECT_THAT(without, Not(HasSubstr("estimated at submit")));
  EXPECT_THAT(without, Not(HasSubstr("Base model")));
}

TEST(RenderEstimateTest, WithoutClassesSaysSoAndJsonRoundTrips) {
  tuneledger::v1::JobEstimate estimate;
  estimate.set_examples(3);
  estimate.set_total_steps(1);
  estimate.set_tokens_to_train(12);
  estimate.set_tokens_basis("assumed, not counted (SentencePiece): 4 bytes of the file per token");
  estimate.set_scoring_tokens(30);
  estimate.add_notes("No active worker can run this job (1 GPUs per attempt).");
  const std::string text = RenderEstimate(estimate, OutputFormat::kTable);
  EXPECT_THAT(text, HasSubstr("tokens to train  12 (assumed)")) << text;
  EXPECT_THAT(text, HasSubstr("scoring tokens   30 (data selection, forward only)")) << text;
  EXPECT_THAT(text, HasSubstr("model            -")) << text;
  EXPECT_THAT(text, HasSubstr("none: no active worker can run this job")) << text;
  EXPECT_THAT(text, HasSubstr("  - No active worker can run this job")) << text;
  EXPECT_EQ(RenderSubmittedEstimate(estimate),
            "estimate: 12 tokens (assumed), 1 steps; no worker class to price it on\n");

  tuneledger::v1::JobEstimate parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(
                  RenderEstimate(estimate, OutputFormat::kJson), &parsed)
                  .ok());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(parsed, estimate))
      << parsed.DebugString();
}

TEST(RenderSubmittedTest, JsonKeepsItsFieldsAndAddsTheEstimate) {
  tuneledger::v1::SubmitJobResponse response;
  response.mutable_job()->set_id("42");
  response.set_deduplicated(true);
  response.mutable_estimate()->set_total_steps(7);
  const std::string json = RenderSubmitted(response, OutputFormat::kJson);
  EXPECT_EQ(json, R"({"deduplicated":true,"id":"42","estimate":{"examples":"0","total_steps":7,)"
                  R"("tokens_to_train":"0","tokens_counted":false,"tokens_basis":"",)"
                  R"("model_shape":"","model_params":"0","classes":[],"notes":[],)"
                  R"("scoring_tokens":"0"}})"
                  "\n");
  EXPECT_EQ(RenderSubmitted(response, OutputFormat::kTable), "42\n");
}

}  // namespace
}  // namespace tuneledger::client
