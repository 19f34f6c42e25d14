// metrics_bench: the cost of the server's Prometheus bookkeeping with 1,000 jobs' series live,
// next to bare prometheus-cpp (the baseline).
//
//   BM_ServerMetricsOnProgress/jobs:N   one progress report's metric updates (handle lookup
//                                       under ServerMetrics' mutex + five series)
//   BM_ServerMetricsOnCost/jobs:N       one cost update (accrued, projected, budget)
//   BM_ServerMetricsObserveRpc          one RPC latency observation (cached histogram)
//   BM_PlainCounterIncrement            baseline: Counter::Increment on a held handle
//   BM_PlainGaugeSet                    baseline: Gauge::Set on a held handle
//   BM_PlainHistogramObserve            baseline: Histogram::Observe on a held handle
//   BM_PlainFamilyAdd/series:N          baseline: Family::Add of an existing series (what an
//                                       uncached label lookup costs among N series)
//   BM_ScrapeServerMetrics/jobs:N       a /metrics scrape: TextSerializer over Collect(), with N
//                                       jobs' series (counters: samples, bytes per scrape)
//   BM_ScrapePlainGauges/series:N       baseline: the same scrape of N plain gauge samples
//                                       (bench/README.md has the numbers measured)
#include <benchmark/benchmark.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/clock.h"
#include "server/metrics/server_metrics.h"

namespace tuneledger::bench {
namespace {

constexpr int kTenants = 10;
constexpr int kWorkers = 50;
const std::vector<double> kThresholds = {0.5, 0.8, 1.0};
const char* const kRpcMethods[] = {
    "/tuneledger.v1.JobService/SubmitJob",         "/tuneledger.v1.JobService/GetJob",
    "/tuneledger.v1.JobService/ListJobs",          "/tuneledger.v1.JobService/WatchJob",
    "/tuneledger.v1.WorkerService/LeaseJob",       "/tuneledger.v1.WorkerService/Heartbeat",
    "/tuneledger.v1.WorkerService/ReportProgress", "/tuneledger.v1.WorkerService/FinishAttempt",
};

std::string JobId(int job) { return std::to_string(job + 1); }
std::string Tenant(int job) { return absl::StrCat("tenant-", job % kTenants); }

// A server's metrics as they look with `jobs` running jobs (every per-job series set, a budget
// with its thresholds), `kWorkers` workers and RPC histograms for the server's methods.
struct PopulatedMetrics {
  explicit PopulatedMetrics(int jobs) : metrics(registry, clock) {
    metrics.SetJobCounts({{"QUEUED", 10}, {"RUNNING", jobs}, {"SUCCEEDED", 1000}});
    metrics.SetQueueDepth(10);
    metrics.SetWorkerCounts({{"IDLE", 0}, {"BUSY", kWorkers}});
    for (int w = 0; w < kWorkers; ++w) {
      metrics.SetWorker(absl::StrCat("w-", w), 2.5, w % 2 == 0, 1);
    }
    for (int job = 0; job < jobs; ++job) {
      metrics.OnSubmitted(Tenant(job));
      metrics.OnProgress(JobId(job), Tenant(job), JobProgressSample{10, 2.5, 140.0, 20480, 0.01});
      metrics.OnEvalLoss(JobId(job), Tenant(job), 2.6);
      metrics.OnCost(JobId(job), Tenant(job), 0.5, 4.0, 10.0, kThresholds);
      metrics.AddComputeCost(Tenant(job), 0.5);
    }
    for (const char* method : kRpcMethods) {
      metrics.ObserveRpc(method, "OK", 0.001);
      metrics.ObserveRpc(method, "NOT_FOUND", 0.001);
    }
  }

  RealClock clock;
  prometheus::Registry registry;
  ServerMetrics metrics;
};

void BM_ServerMetricsOnProgress(benchmark::State& state) {
  const int jobs = static_cast<int>(state.range(0));
  PopulatedMetrics populated(jobs);
  std::vector<std::string> ids, tenants;
  for (int job = 0; job < jobs; ++job) {
    ids.push_back(JobId(job));
    tenants.push_back(Tenant(job));
  }
  int job = 0;
  int step = 10;
  for (auto _ : state) {
    populated.metrics.OnProgress(ids[job], tenants[job],
                                 JobProgressSample{++step, 2.4, 141.0, int64_t{2048} * step, 0.02});
    job = job + 1 == jobs ? 0 : job + 1;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ServerMetricsOnProgress)->ArgName("jobs")->Arg(1000);

void BM_ServerMetricsOnCost(benchmark::State& state) {
  const int jobs = static_cast<int>(state.range(0));
  PopulatedMetrics populated(jobs);
  std::vector<std::string> ids, tenants;
  for (int job = 0; job < jobs; ++job) {
    ids.push_back(JobId(job));
    tenants.push_back(Tenant(job));
  }
  int job = 0;
  double accrued = 0.5;
  for (auto _ : state) {
    accrued += 1e-6;
    populated.metrics.OnCost(ids[job], tenants[job], accrued, 4.0, 10.0, kThresholds);
    job = job + 1 == jobs ? 0 : job + 1;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ServerMetricsOnCost)->ArgName("jobs")->Arg(1000);

void BM_ServerMetricsObserveRpc(benchmark::State& state) {
  PopulatedMetrics populated(1000);
  const std::string method = kRpcMethods[0];
  const std::string code = "OK";
  for (auto _ : state) populated.metrics.ObserveRpc(method, code, 0.0007);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ServerMetricsObserveRpc);

void BM_PlainCounterIncrement(benchmark::State& state) {
  prometheus::Registry registry;
  prometheus::Counter& counter = prometheus::BuildCounter()
                                     .Name("plain_total")
                                     .Help("baseline")
                                     .Register(registry)
                                     .Add({{"tenant", "t"}});
  for (auto _ : state) counter.Increment();
  benchmark::DoNotOptimize(counter.Value());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PlainCounterIncrement);

void BM_PlainGaugeSet(benchmark::State& state) {
  prometheus::Registry registry;
  prometheus::Gauge& gauge = prometheus::BuildGauge()
                                 .Name("plain")
                                 .Help("baseline")
                                 .Register(registry)
                                 .Add({{"job_id", "1"}, {"tenant", "t"}});
  double value = 0;
  for (auto _ : state) gauge.Set(value += 1);
  benchmark::DoNotOptimize(gauge.Value());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PlainGaugeSet);

void BM_PlainHistogramObserve(benchmark::State& state) {
  prometheus::Registry registry;
  prometheus::Histogram& histogram =
      prometheus::BuildHistogram()
          .Name("plain_seconds")
          .Help("baseline")
          .Register(registry)
          .Add({{"method", "m"}, {"code", "OK"}},
               prometheus::Histogram::BucketBoundaries{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                       0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30});
  for (auto _ : state) histogram.Observe(0.0007);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PlainHistogramObserve);

void BM_PlainFamilyAdd(benchmark::State& state) {
  const int series = static_cast<int>(state.range(0));
  prometheus::Registry registry;
  auto& family = prometheus::BuildGauge().Name("plain").Help("baseline").Register(registry);
  for (int job = 0; job < series; ++job) family.Add({{"job_id", JobId(job)}, {"tenant", "t"}});
  int job = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(&family.Add({{"job_id", JobId(job)}, {"tenant", "t"}}));
    job = job + 1 == series ? 0 : job + 1;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PlainFamilyAdd)->ArgName("series")->Arg(1000);

// Runs scrapes of `registry` and reports samples and bytes per scrape.
void ScrapeLoop(benchmark::State& state, prometheus::Registry& registry) {
  const prometheus::TextSerializer serializer;
  size_t bytes = 0;
  for (auto _ : state) {
    const std::string text = serializer.Serialize(registry.Collect());
    bytes = text.size();
    benchmark::DoNotOptimize(text.data());
  }
  // Samples: exposition lines that are not # HELP / # TYPE comments.
  const std::string text = serializer.Serialize(registry.Collect());
  int64_t samples = 0;
  for (size_t line = 0; line < text.size(); line = text.find('\n', line) + 1) {
    if (text[line] != '#') ++samples;
    if (text.find('\n', line) == std::string::npos) break;
  }
  state.counters["samples"] = static_cast<double>(samples);
  state.counters["bytes"] = static_cast<double>(bytes);
  state.SetItemsProcessed(state.iterations());
}

void BM_ScrapeServerMetrics(benchmark::State& state) {
  PopulatedMetrics populated(static_cast<int>(state.range(0)));
  ScrapeLoop(state, populated.registry);
}
BENCHMARK(BM_ScrapeServerMetrics)
    ->ArgName("jobs")
    ->Arg(100)
    ->Arg(1000)
    ->Unit(benchmark::kMillisecond);

void BM_ScrapePlainGauges(benchmark::State& state) {
  const int series = static_cast<int>(state.range(0));
  prometheus::Registry registry;
  auto& family = prometheus::BuildGauge().Name("plain").Help("baseline").Register(registry);
  for (int job = 0; job < series; ++job) {
    family.Add({{"job_id", JobId(job)}, {"tenant", Tenant(job)}}).Set(job);
  }
  ScrapeLoop(state, registry);
}
BENCHMARK(BM_ScrapePlainGauges)->ArgName("series")->Arg(10000)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace tuneledger::bench

BENCHMARK_MAIN();
