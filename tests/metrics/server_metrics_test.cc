#include "server/metrics/server_metrics.h"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"
#include "tests/metrics/scrape_text.h"
#include "tests/testing/temp_dir.h"

namespace tuneledger {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Key;
using ::testing::Not;
using ::tuneledger::testing::ParseScrape;
using ::tuneledger::testing::ScrapeSamples;
using ::tuneledger::testing::ScrapeText;
using ::tuneledger::testing::TempDir;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string JobSeries(const std::string& name, const std::string& job_id,
                      const std::string& tenant) {
  return absl::StrCat(name, "{job_id=\"", job_id, "\",tenant=\"", tenant, "\"}");
}

class ServerMetricsTest : public ::testing::Test {
 protected:
  ServerMetricsTest() : metrics_(registry_, clock_, {.job_series_retention = absl::Minutes(5)}) {}

  ScrapeSamples Scrape() const { return ParseScrape(ScrapeText(registry_)); }

  // The value of one series; fails the test (and returns NaN) when it is missing.
  double Value(const std::string& series) const {
    const ScrapeSamples samples = Scrape();
    auto it = samples.find(series);
    if (it == samples.end()) {
      ADD_FAILURE() << "series " << series << " is not in the scrape:\n" << ScrapeText(registry_);
      return kNaN;
    }
    return it->second;
  }

  // Gives every family at least one series (prometheus-cpp leaves empty families out of the
  // exposition).
  void PopulateEveryFamily() {
    metrics_.SetJobCounts({{"RUNNING", 1}});
    metrics_.SetQueueDepth(0);
    metrics_.OnSubmitted("acme");
    metrics_.OnProgress("job-1", "acme", {.step = 3, .loss = kNaN, .tokens = 30});
    metrics_.OnEvalLoss("job-1", "acme", 2.0);
    metrics_.OnCost("job-1", "acme", 0.5, 1.5, 1.0, {0.5, 0.8, 1.0});
    metrics_.AddComputeCost("acme", 0.5);
    metrics_.AddPreemptionWaste("acme", 0.125);
    metrics_.OnBudgetThreshold("acme", 0.5);
    metrics_.OnProjectedOverrun("acme");
    metrics_.OnFinished("job-0", "acme", "CANCELLED", "USER");
    metrics_.OnCostQuality("job-0", 3.25, false);
    metrics_.SetWorkerCounts({{"BUSY", 1}});
    metrics_.SetWorker("w1", 2.0, true, 1);
    metrics_.ObserveRpc("/tuneledger.v1.JobService/GetJob", "NOT_FOUND", 0.001);
  }

  prometheus::Registry registry_;
  FakeClock clock_;
  ServerMetrics metrics_;
};

TEST_F(ServerMetricsTest, EveryFamilyHasHelpAndTypeAndCountersSpellTotal) {
  PopulateEveryFamily();
  const std::string text = ScrapeText(registry_);
  const std::vector<std::pair<std::string, std::string>> families = {
      {"tuneledger_jobs", "gauge"},
      {"tuneledger_queue_depth", "gauge"},
      {"tuneledger_job_submissions_total", "counter"},
      {"tuneledger_job_finishes_total", "counter"},
      {"tuneledger_job_loss", "gauge"},
      {"tuneledger_job_eval_loss", "gauge"},
      {"tuneledger_job_tokens_per_second", "gauge"},
      {"tuneledger_job_tokens_total", "counter"},
      {"tuneledger_job_step", "gauge"},
      {"tuneledger_job_progress_ratio", "gauge"},
      {"tuneledger_job_accrued_cost_usd", "gauge"},
      {"tuneledger_job_projected_cost_usd", "gauge"},
      {"tuneledger_job_budget_usd", "gauge"},
      {"tuneledger_job_budget_threshold_ratio", "gauge"},
      {"tuneledger_job_total_cost_usd", "gauge"},
      {"tuneledger_job_pareto_optimal", "gauge"},
      {"tuneledger_budget_threshold_crossings_total", "counter"},
      {"tuneledger_projected_overruns_total", "counter"},
      {"tuneledger_compute_cost_usd_total", "counter"},
      {"tuneledger_preemption_waste_usd_total", "counter"},
      {"tuneledger_workers", "gauge"},
      {"tuneledger_worker_price_usd_per_gpu_hour", "gauge"},
      {"tuneledger_worker_gpus", "gauge"},
      {"tuneledger_rpc_duration_seconds", "histogram"},
  };
  for (const auto& [name, type] : families) {
    EXPECT_THAT(text, HasSubstr(absl::StrCat("# HELP ", name, " "))) << name;
    EXPECT_THAT(text, HasSubstr(absl::StrCat("# TYPE ", name, " ", type, "\n"))) << name;
    if (type == "counter") {
      EXPECT_TRUE(absl::EndsWith(name, "_total")) << name;
    }
  }
}

TEST_F(ServerMetricsTest, StateGaugesExistBeforeAnyJobAndMissingStatesReadZero) {
  EXPECT_EQ(Value(R"(tuneledger_jobs{state="QUEUED"})"), 0);
  EXPECT_EQ(Value(R"(tuneledger_workers{state="IDLE"})"), 0);
  EXPECT_EQ(Value("tuneledger_queue_depth"), 0);

  metrics_.SetJobCounts({{"QUEUED", 3}, {"RUNNING", 1}});
  metrics_.SetQueueDepth(3);
  EXPECT_EQ(Value(R"(tuneledger_jobs{state="QUEUED"})"), 3);
  EXPECT_EQ(Value(R"(tuneledger_jobs{state="RUNNING"})"), 1);
  EXPECT_EQ(Value(R"(tuneledger_jobs{state="SUCCEEDED"})"), 0);
  EXPECT_EQ(Value("tuneledger_queue_depth"), 3);

  metrics_.SetJobCounts({{"SUCCEEDED", 4}});
  EXPECT_EQ(Value(R"(tuneledger_jobs{state="QUEUED"})"), 0);
  EXPECT_EQ(Value(R"(tuneledger_jobs{state="RUNNING"})"), 0);
  EXPECT_EQ(Value(R"(tuneledger_jobs{state="SUCCEEDED"})"), 4);

  metrics_.SetWorkerCounts({{"BUSY", 2}, {"LOST", 1}});
  EXPECT_EQ(Value(R"(tuneledger_workers{state="BUSY"})"), 2);
  EXPECT_EQ(Value(R"(tuneledger_workers{state="LOST"})"), 1);
  EXPECT_EQ(Value(R"(tuneledger_workers{state="IDLE"})"), 0);
  metrics_.SetWorkerCounts({});
  EXPECT_EQ(Value(R"(tuneledger_workers{state="LOST"})"), 0);
}

TEST_F(ServerMetricsTest, ProgressEvalAndCostSetPerJobSeries) {
  metrics_.OnProgress(
      "job-1", "acme",
      {.step = 7, .loss = 2.5, .tokens_per_second = 130.5, .tokens = 4096, .progress_ratio = 0.35});
  metrics_.OnEvalLoss("job-1", "acme", 2.75);
  metrics_.OnCost("job-1", "acme", 0.42, 1.2, 2.0, {0.5, 0.8, 1.0});

  EXPECT_EQ(Value(JobSeries("tuneledger_job_step", "job-1", "acme")), 7);
  EXPECT_EQ(Value(JobSeries("tuneledger_job_loss", "job-1", "acme")), 2.5);
  EXPECT_EQ(Value(JobSeries("tuneledger_job_tokens_per_second", "job-1", "acme")), 130.5);
  EXPECT_EQ(Value(JobSeries("tuneledger_job_tokens_total", "job-1", "acme")), 4096);
  EXPECT_EQ(Value(JobSeries("tuneledger_job_progress_ratio", "job-1", "acme")), 0.35);
  EXPECT_EQ(Value(JobSeries("tuneledger_job_eval_loss", "job-1", "acme")), 2.75);
  EXPECT_EQ(Value(JobSeries("tuneledger_job_accrued_cost_usd", "job-1", "acme")), 0.42);
  EXPECT_EQ(Value(JobSeries("tuneledger_job_projected_cost_usd", "job-1", "acme")), 1.2);
  EXPECT_EQ(Value(JobSeries("tuneledger_job_budget_usd", "job-1", "acme")), 2.0);
  EXPECT_EQ(
      Value(
          R"(tuneledger_job_budget_threshold_ratio{job_id="job-1",tenant="acme",threshold="0.5"})"),
      0.5);
  EXPECT_EQ(
      Value(
          R"(tuneledger_job_budget_threshold_ratio{job_id="job-1",tenant="acme",threshold="0.8"})"),
      0.8);
  EXPECT_EQ(
      Value(R"(tuneledger_job_budget_threshold_ratio{job_id="job-1",tenant="acme",threshold="1"})"),
      1.0);
  EXPECT_EQ(metrics_.TrackedJobCount(), 1);

  // Budget and thresholds are fixed by the first report; later reports move only the cost.
  metrics_.OnCost("job-1", "acme", 0.9, 1.5, 50.0, {0.25});
  EXPECT_EQ(Value(JobSeries("tuneledger_job_accrued_cost_usd", "job-1", "acme")), 0.9);
  EXPECT_EQ(Value(JobSeries("tuneledger_job_budget_usd", "job-1", "acme")), 2.0);
  EXPECT_THAT(
      Scrape(),
      Not(Contains(Key(
          R"(tuneledger_job_budget_threshold_ratio{job_id="job-1",tenant="acme",threshold="0.25"})"))));
}

TEST_F(ServerMetricsTest, JobWithoutBudgetHasNoBudgetSeries) {
  metrics_.OnCost("job-2", "acme", 0.1, 0.3, std::nullopt, {0.5, 0.8, 1.0});
  const std::string text = ScrapeText(registry_);
  EXPECT_THAT(text, HasSubstr(JobSeries("tuneledger_job_accrued_cost_usd", "job-2", "acme")));
  EXPECT_THAT(text, Not(HasSubstr(JobSeries("tuneledger_job_budget_usd", "job-2", "acme"))));
  EXPECT_THAT(text, Not(HasSubstr(R"(tuneledger_job_budget_threshold_ratio{job_id="job-2")")));
}

TEST_F(ServerMetricsTest, NanLossIsExported) {
  metrics_.OnProgress("job-nan", "acme", {.step = 3, .loss = kNaN});
  const std::string series = JobSeries("tuneledger_job_loss", "job-nan", "acme");
  const ScrapeSamples samples = Scrape();
  ASSERT_THAT(samples, Contains(Key(series))) << ScrapeText(registry_);
  EXPECT_TRUE(std::isnan(samples.at(series)))
      << "expected NaN, actual " << samples.at(series) << "\n"
      << ScrapeText(registry_);
}

TEST_F(ServerMetricsTest, PerJobSeriesAreRemovedAfterRetentionAndOthersStay) {
  metrics_.OnProgress("done", "acme", {.step = 10, .loss = 1.0, .tokens = 100});
  metrics_.OnEvalLoss("done", "acme", 1.1);
  metrics_.OnCost("done", "acme", 1.0, 1.0, 5.0, {0.5, 1.0});
  metrics_.OnProgress("running", "beta", {.step = 2, .loss = 3.0, .tokens = 20});
  ASSERT_EQ(metrics_.TrackedJobCount(), 2);

  metrics_.OnFinished("done", "acme", "SUCCEEDED", "");
  clock_.Advance(absl::Minutes(5) - absl::Seconds(1));
  EXPECT_EQ(metrics_.RemoveExpired(), 0);
  EXPECT_EQ(Value(JobSeries("tuneledger_job_loss", "done", "acme")), 1.0);

  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(metrics_.RemoveExpired(), 1);
  EXPECT_EQ(metrics_.TrackedJobCount(), 1);
  const std::string text = ScrapeText(registry_);
  EXPECT_THAT(text, Not(HasSubstr(R"(job_id="done")"))) << text;
  EXPECT_EQ(Value(JobSeries("tuneledger_job_loss", "running", "beta")), 3.0);
  EXPECT_EQ(Value(R"(tuneledger_job_finishes_total{reason="NONE",state="SUCCEEDED"})"), 1);

  // A report that arrives after the series were dropped must not bring them back: nothing
  // would remove them again.
  metrics_.OnProgress("done", "acme", {.step = 11, .loss = 0.9});
  metrics_.OnCost("done", "acme", 1.2, 1.2, 5.0, {0.5});
  EXPECT_THAT(ScrapeText(registry_), Not(HasSubstr(R"(job_id="done")")));
  EXPECT_EQ(metrics_.TrackedJobCount(), 1);

  // The bookkeeping entry itself goes away later; RemoveExpired reports no series for it.
  clock_.Advance(absl::Minutes(10));
  EXPECT_EQ(metrics_.RemoveExpired(), 0);
  EXPECT_EQ(metrics_.TrackedJobCount(), 1);
}

TEST_F(ServerMetricsTest, FinishedJobKeepsUpdatingUntilItsSeriesExpire) {
  metrics_.OnCost("late", "acme", 1.0, 1.0, std::nullopt, {});
  metrics_.OnFinished("late", "acme", "CANCELLED", "BUDGET_EXCEEDED");
  // The final cost can come right after the finish.
  metrics_.OnCost("late", "acme", 1.05, 1.05, std::nullopt, {});
  EXPECT_EQ(Value(JobSeries("tuneledger_job_accrued_cost_usd", "late", "acme")), 1.05);
  EXPECT_EQ(Value(R"(tuneledger_job_finishes_total{reason="BUDGET_EXCEEDED",state="CANCELLED"})"),
            1);
  clock_.Advance(absl::Minutes(5));
  EXPECT_EQ(metrics_.RemoveExpired(), 1);
  EXPECT_EQ(metrics_.TrackedJobCount(), 0);
}

// A finished job's place on the cost-quality plane is set only while its series are kept: never
// for a job the metrics do not know (ended before a restart) nor one whose series expired.
TEST_F(ServerMetricsTest, CostQualitySeriesExistOnlyWhileAFinishedJobsSeriesAreKept) {
  metrics_.OnCostQuality("unknown", 9.0, true);
  EXPECT_THAT(ScrapeText(registry_), Not(HasSubstr(R"(job_id="unknown")")));
  EXPECT_EQ(metrics_.TrackedJobCount(), 0);

  metrics_.OnEvalLoss("sweep-1", "acme", 1.5);
  metrics_.OnFinished("sweep-1", "acme", "SUCCEEDED", "");
  metrics_.OnCostQuality("sweep-1", 2.5, true);
  EXPECT_EQ(Value(JobSeries("tuneledger_job_total_cost_usd", "sweep-1", "acme")), 2.5);
  EXPECT_EQ(Value(JobSeries("tuneledger_job_pareto_optimal", "sweep-1", "acme")), 1.0);
  metrics_.OnCostQuality("sweep-1", 2.5, false);  // a later job beat it
  EXPECT_EQ(Value(JobSeries("tuneledger_job_pareto_optimal", "sweep-1", "acme")), 0.0);

  clock_.Advance(absl::Minutes(5));
  EXPECT_EQ(metrics_.RemoveExpired(), 1);
  metrics_.OnCostQuality("sweep-1", 2.5, true);
  EXPECT_THAT(ScrapeText(registry_), Not(HasSubstr(R"(job_id="sweep-1")")));
}

TEST_F(ServerMetricsTest, ManyFinishedJobsLeaveNoSeriesBehind) {
  for (int i = 0; i < 200; ++i) {
    const std::string id = absl::StrCat("job-", i);
    metrics_.OnProgress(id, "acme", {.step = 1, .loss = 2.0, .tokens = 10});
    metrics_.OnCost(id, "acme", 0.1, 0.2, 1.0, {0.5, 0.8, 1.0});
    metrics_.OnFinished(id, "acme", "SUCCEEDED", "");
  }
  EXPECT_EQ(metrics_.TrackedJobCount(), 200);
  clock_.Advance(absl::Minutes(5));
  EXPECT_EQ(metrics_.RemoveExpired(), 200);
  EXPECT_EQ(metrics_.TrackedJobCount(), 0);
  EXPECT_THAT(ScrapeText(registry_), Not(HasSubstr("job_id=")));
}

TEST_F(ServerMetricsTest, ATenantsWasteSeriesStartsAtZeroWithItsComputeSeries) {
  const std::string waste = R"(tuneledger_preemption_waste_usd_total{tenant="acme"})";
  EXPECT_EQ(Scrape().count(waste), 0u);
  metrics_.AddComputeCost("acme", 0.25);
  EXPECT_EQ(Value(waste), 0) << "no waste reads as 0, not as no data";
  metrics_.AddPreemptionWaste("acme", 0.125);
  EXPECT_EQ(Value(waste), 0.125);
}

TEST_F(ServerMetricsTest, CountersNeverDecrease) {
  const std::string tokens = JobSeries("tuneledger_job_tokens_total", "job-1", "acme");
  metrics_.OnProgress("job-1", "acme", {.step = 10, .tokens = 1000});
  EXPECT_EQ(Value(tokens), 1000);
  // A resumed attempt restarts from an older checkpoint and reports fewer tokens.
  metrics_.OnProgress("job-1", "acme", {.step = 5, .tokens = 500});
  EXPECT_EQ(Value(tokens), 1000);
  metrics_.OnProgress("job-1", "acme", {.step = 20, .tokens = 2000});
  EXPECT_EQ(Value(tokens), 2000);

  const std::string cost = R"(tuneledger_compute_cost_usd_total{tenant="acme"})";
  metrics_.AddComputeCost("acme", 0.25);
  metrics_.AddComputeCost("acme", -1.0);
  metrics_.AddComputeCost("acme", kNaN);
  metrics_.AddComputeCost("acme", 0.5);
  EXPECT_EQ(Value(cost), 0.75);

  metrics_.OnSubmitted("acme");
  metrics_.OnSubmitted("acme");
  metrics_.OnSubmitted("beta");
  EXPECT_EQ(Value(R"(tuneledger_job_submissions_total{tenant="acme"})"), 2);
  EXPECT_EQ(Value(R"(tuneledger_job_submissions_total{tenant="beta"})"), 1);

  metrics_.OnBudgetThreshold("acme", 0.5);
  metrics_.OnBudgetThreshold("acme", 0.8);
  metrics_.OnBudgetThreshold("acme", 0.8);
  EXPECT_EQ(Value(R"(tuneledger_budget_threshold_crossings_total{tenant="acme",threshold="0.5"})"),
            1);
  EXPECT_EQ(Value(R"(tuneledger_budget_threshold_crossings_total{tenant="acme",threshold="0.8"})"),
            2);
  metrics_.OnProjectedOverrun("acme");
  EXPECT_EQ(Value(R"(tuneledger_projected_overruns_total{tenant="acme"})"), 1);
}

TEST_F(ServerMetricsTest, LabelValuesAreEscaped) {
  metrics_.OnSubmitted("we\"ird\\ten\nant");
  metrics_.OnProgress("job\"1", "we\"ird\\ten\nant", {.step = 1, .loss = 1.5});
  const std::string text = ScrapeText(registry_);
  EXPECT_THAT(text, HasSubstr(R"(tuneledger_job_submissions_total{tenant="we\"ird\\ten\nant"} 1)"))
      << text;
  EXPECT_THAT(text,
              HasSubstr(R"(tuneledger_job_loss{job_id="job\"1",tenant="we\"ird\\ten\nant"} 1.5)"))
      << text;
}

TEST_F(ServerMetricsTest, WorkerSeriesFollowTheWorker) {
  metrics_.SetWorker("w1", 2.5, /*spot=*/false, /*gpus=*/1);
  EXPECT_EQ(Value(R"(tuneledger_worker_price_usd_per_gpu_hour{spot="false",worker_id="w1"})"), 2.5);
  EXPECT_EQ(Value(R"(tuneledger_worker_gpus{worker_id="w1"})"), 1);

  metrics_.SetWorker("w1", 0.75, /*spot=*/true, /*gpus=*/8);
  const ScrapeSamples samples = Scrape();
  EXPECT_THAT(samples,
              Not(Contains(Key(
                  R"(tuneledger_worker_price_usd_per_gpu_hour{spot="false",worker_id="w1"})"))));
  EXPECT_EQ(Value(R"(tuneledger_worker_price_usd_per_gpu_hour{spot="true",worker_id="w1"})"), 0.75);
  EXPECT_EQ(Value(R"(tuneledger_worker_gpus{worker_id="w1"})"), 8);

  metrics_.RemoveWorker("w1");
  EXPECT_THAT(ScrapeText(registry_), Not(HasSubstr(R"(worker_id="w1")")));
  metrics_.RemoveWorker("never-registered");  // a no-op
}

TEST_F(ServerMetricsTest, RpcLatencyHistogramByMethodAndCode) {
  const std::string method = "/tuneledger.v1.JobService/SubmitJob";
  metrics_.ObserveRpc(method, "OK", 0.0002);
  metrics_.ObserveRpc(method, "OK", 0.003);
  metrics_.ObserveRpc(method, "INVALID_ARGUMENT", 0.0001);
  const std::string labels = absl::StrCat("code=\"OK\",method=\"", method, "\"");
  EXPECT_EQ(Value(absl::StrCat("tuneledger_rpc_duration_seconds_count{", labels, "}")), 2);
  EXPECT_NEAR(Value(absl::StrCat("tuneledger_rpc_duration_seconds_sum{", labels, "}")), 0.0032,
              1e-12);
  EXPECT_EQ(
      Value(absl::StrCat("tuneledger_rpc_duration_seconds_bucket{", labels, ",le=\"0.00025\"}")),
      1);
  EXPECT_EQ(Value(absl::StrCat("tuneledger_rpc_duration_seconds_bucket{", labels, ",le=\"+Inf\"}")),
            2);
  EXPECT_EQ(Value(absl::StrCat(
                "tuneledger_rpc_duration_seconds_count{code=\"INVALID_ARGUMENT\",method=\"", method,
                "\"}")),
            1);
}

TEST(ServerMetricsRegistryTest, TwoServersKeepSeparateRegistries) {
  prometheus::Registry registry_a;
  prometheus::Registry registry_b;
  FakeClock clock;
  ServerMetrics metrics_a(registry_a, clock);
  ServerMetrics metrics_b(registry_b, clock);
  metrics_a.SetQueueDepth(5);
  metrics_b.SetQueueDepth(9);
  metrics_a.OnSubmitted("only-a");
  EXPECT_EQ(ParseScrape(ScrapeText(registry_a)).at("tuneledger_queue_depth"), 5);
  EXPECT_EQ(ParseScrape(ScrapeText(registry_b)).at("tuneledger_queue_depth"), 9);
  EXPECT_THAT(ScrapeText(registry_b), Not(HasSubstr("only-a")));
}

TEST_F(ServerMetricsTest, ConcurrentUpdatesRemovalsAndScrapesLoseNoCounts) {
  constexpr int kThreads = 8;
  constexpr int kIterations = 500;
  constexpr int kJobsPerThread = 10;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t] {
      for (int i = 0; i < kIterations; ++i) {
        const std::string id = absl::StrCat("job-", t, "-", i % kJobsPerThread);
        metrics_.OnProgress(id, "acme", {.step = i, .loss = 1.0, .tokens = i});
        metrics_.OnCost(id, "acme", 0.1, 0.2, 1.0, {0.5, 1.0});
        metrics_.ObserveRpc("/tuneledger.v1.WorkerService/Heartbeat", "OK", 0.0001);
        metrics_.OnSubmitted("acme");
        if (i % 25 == 0) {
          metrics_.RemoveExpired();
          ScrapeText(registry_);
        }
      }
      for (int j = 0; j < kJobsPerThread; ++j) {
        metrics_.OnFinished(absl::StrCat("job-", t, "-", j), "acme", "SUCCEEDED", "");
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(Value(R"(tuneledger_job_submissions_total{tenant="acme"})"), kThreads * kIterations);
  EXPECT_EQ(
      Value(
          R"(tuneledger_rpc_duration_seconds_count{code="OK",method="/tuneledger.v1.WorkerService/Heartbeat"})"),
      kThreads * kIterations);
  EXPECT_EQ(Value(R"(tuneledger_job_finishes_total{reason="NONE",state="SUCCEEDED"})"),
            kThreads * kJobsPerThread);
  EXPECT_EQ(metrics_.TrackedJobCount(), kThreads * kJobsPerThread);
  clock_.Advance(absl::Minutes(5));
  EXPECT_EQ(metrics_.RemoveExpired(), kThreads * kJobsPerThread);
  EXPECT_EQ(metrics_.TrackedJobCount(), 0);
}

TEST_F(ServerMetricsTest, ExposedMetricNamesAreExactlyTheNamesAScrapeContains) {
  PopulateEveryFamily();
  std::set<std::string> scraped;
  for (const auto& [series, value] : Scrape()) {
    scraped.insert(series.substr(0, series.find('{')));
  }
  const std::vector<std::string> exposed = ServerMetrics::ExposedMetricNames();
  EXPECT_EQ(std::set<std::string>(exposed.begin(), exposed.end()), scraped);
  EXPECT_EQ(std::set<std::string>(exposed.begin(), exposed.end()).size(), exposed.size())
      << "duplicate names in the family table";
}

// The same lint Prometheus' own tool applies to a live scrape, on every family populated.
TEST_F(ServerMetricsTest, FullyPopulatedScrapePassesPromtoolCheckMetrics) {
  const std::string promtool = TUNELEDGER_PROMTOOL;
  ASSERT_FALSE(promtool.empty()) << "promtool not found at configure time: run "
                                    "deploy/install-deps.sh (package prometheus) and reconfigure";
  PopulateEveryFamily();

  const TempDir dir;
  const std::string path = dir.File("scrape.prom");
  {
    std::ofstream out(path);
    out << ScrapeText(registry_);
    ASSERT_TRUE(out.good()) << "cannot write " << path;
  }
  const std::string command = absl::StrCat(promtool, " check metrics < ", path, " 2>&1");
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr) << command;
  std::string output;
  char buffer[4096];
  while (size_t n = fread(buffer, 1, sizeof(buffer), pipe)) output.append(buffer, n);
  const int status = pclose(pipe);
  EXPECT_EQ(status, 0) << "promtool check metrics found problems:\n"
                       << output << "\nscrape:\n"
                       << ScrapeText(registry_);
  EXPECT_EQ(output, "") << "expected no findings";
}

}  // namespace
}  // namespace tuneledger
