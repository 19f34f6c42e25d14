// control_plane_bench: the control plane at scale (issue 13 point 4). One server core (JobStore on
// the real disk, Scheduler with its ticker, RealClock) driven in-process by many simulated
// workers and clients through the calls the gRPC handlers make (Scheduler::ReportProgress,
// Heartbeat, SubmitJob, LeaseJob, GetJob, ListJobs): this measures the core, not gRPC
// (rpc_bench measures what gRPC adds; a no-op RPC tops out near 12,000/s on 2 cores).
//
//   BM_ControlPlaneLoad/workers:W/submitters:S/tick_s:T/report_hz:H
//       W workers, each with a running job, report progress (H = 0: as fast as 256 threads can
//       send, closed loop: the intake's capacity, not W reports/s; H = 1: each worker once a
//       second, paced, W reports/s: the load issue 13 names) while every worker heartbeats
//       once a second (W heartbeats/s, paced) and S clients submit jobs in a closed loop, for
//       --seconds. T = 0: the server's ticker (every 0.5 s it queues every running attempt's
//       bill under the scheduler's mutex and waits for their group commit without it); T = 60:
//       no tick during the run, to show the intake without the ticker's writes. W = 0: the S
//       submitters alone (the pre-flight estimate then prices no worker). Counters:
//       reports_per_s, heartbeats_per_s, submits_per_s and each call's p50/p99 in ms. Every counted
//       call returned OK, so it was durable.
//   BM_ReadLatency/callers:C
//       --read_jobs jobs stored (90% SUCCEEDED, the rest QUEUED, 4 tenants); C threads call
//       GetJob on random jobs, then C threads call ListJobs (a tenant's first page, 100 jobs),
//       --seconds each, nothing else running. C = 1: the call's own time; C = 8: with the
//       queueing of 8 callers on 2 cores (the store has 16 read connections: JobStoreOptions).
//       Counters: get_p50_ms, get_p99_ms, list_p50_ms, list_p99_ms.
//   BM_LeaseToDispatch/idle_workers:N
//       N workers wait in LeaseJob long polls; the bench submits one job at a time and times
//       SubmitJob called -> a worker holding its lease (dispatch_p50_ms, dispatch_p99_ms): the
//       durable submit, the wake-up, the durable lease and its first bill. (The lease often
//       arrives before SubmitJob has returned, so the submit is inside the figure.)
//   BM_KillDuringLoad
//       A forked child runs the core under load (64 reporting workers, 8 submitters) and
//       writes every acknowledged submit and progress report to a pipe; the parent SIGKILLs it
//       after --seconds, reopens the file and counts acknowledged writes that are missing
//       (lost_submits, lost_reports; any loss fails the run with "ERROR OCCURRED").
//
// Flags (before Google Benchmark's): --seconds=N (default 3; ctest passes 1) and --read_jobs=N
// (default 100000; ctest passes 2000).
#include <benchmark/benchmark.h>
#include <poll.h>
#include <prometheus/registry.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/clock.h"
#include "base/data_roots.h"
#include "base/status_macros.h"
#include "bench/bench_jobs.h"
#include "server/core/job_spec_validator.h"
#include "server/core/job_store.h"
#include "server/core/scheduler.h"
#include "server/metrics/server_metrics.h"
#include "tuneledger/v1/jobs.pb.h"
#include "tuneledger/v1/worker.pb.h"

namespace tuneledger::bench {
namespace {

int flag_seconds = 3;
int flag_read_jobs = 100'000;
constexpr char kCredential[] = "bench-workers";
constexpr int kReportThreads = 256;  // reports in flight at once, as 1,000 streams allow
// Heartbeats are paced (each worker once a second) from this many threads, so that a slow
// commit delays them instead of capping their rate (1,000 workers have 1,000 threads of their own).
constexpr int kHeartbeatThreads = 64;

using SteadyClock = std::chrono::steady_clock;

double MillisSince(SteadyClock::time_point start) {
  return std::chrono::duration<double, std::milli>(SteadyClock::now() - start).count();
}

// Nearest-rank quantile of `samples` (sorted in place); 0 when empty.
double Quantile(std::vector<double>& samples, double q) {
  if (samples.empty()) return 0;
  const size_t rank = std::min(samples.size() - 1, static_cast<size_t>(q * samples.size()));
  std::nth_element(samples.begin(), samples.begin() + rank, samples.end());
  return samples[rank];
}

// Latency samples of many threads; each thread fills its own vector and merges once.
// Thread safety: Merge() is thread-safe; Take() after the threads joined.
class Samples {
 public:
  void Merge(const std::vector<double>& mine) {
    absl::MutexLock lock(&mu_);
    all_.insert(all_.end(), mine.begin(), mine.end());
  }
  std::vector<double> Take() {
    absl::MutexLock lock(&mu_);
    return std::move(all_);
  }

 private:
  absl::Mutex mu_;
  std::vector<double> all_ ABSL_GUARDED_BY(mu_);
};

// The server core as tuneledger-server's main() composes it, minus gRPC: store, metrics,
// scheduler with its ticker. Thread safety: Scheduler and JobStore are thread-safe.
class ControlPlane {
 public:
  // Opens (or reopens) the store at `db_path`; `data_root` holds the bench spec's files.
  // `tick_interval`: the ticker's period (zero: the server's default, half the report interval).
  static absl::StatusOr<std::unique_ptr<ControlPlane>> Open(
      const std::string& db_path, const std::string& data_root,
      absl::Duration tick_interval = absl::ZeroDuration()) {
    auto plane = std::unique_ptr<ControlPlane>(new ControlPlane());
    TL_ASSIGN_OR_RETURN(plane->store_, JobStore::Open(db_path, plane->clock_));
    SchedulerOptions options;
    std::string roots_error;
    std::optional<DataRoots> roots = DataRoots::Parse({data_root}, &roots_error);
    if (!roots) return absl::InternalError(roots_error);
    options.data_roots = *roots;
    options.max_queued_jobs_per_tenant = 1 << 30;  // the bench queues far more than a tenant
    options.max_waiting_lease_polls = 1024;
    options.max_waiting_lease_polls_per_credential = 1024;
    // Setting up 1,000 workers takes longer than a heartbeat timeout, and expiry is not measured.
    options.heartbeat_timeout = absl::Minutes(10);
    options.tick_interval = tick_interval;
    plane->scheduler_ =
        std::make_unique<Scheduler>(*plane->store_, plane->metrics_, plane->clock_, options);
    TL_RETURN_IF_ERROR(plane->scheduler_->Start());
    return plane;
  }
  ~ControlPlane() {
    if (scheduler_ != nullptr) scheduler_->Stop();
  }
  ControlPlane(const ControlPlane&) = delete;
  ControlPlane& operator=(const ControlPlane&) = delete;

  Scheduler& scheduler() { return *scheduler_; }
  JobStore& store() { return *store_; }

 private:
  ControlPlane() : metrics_(registry_, clock_) {}

  RealClock clock_;
  prometheus::Registry registry_;
  ServerMetrics metrics_;
  std::unique_ptr<JobStore> store_;
  std::unique_ptr<Scheduler> scheduler_;
};

// A temp dir with the bench spec's files and a control plane on jobs.db in it.
struct Fixture {
  std::unique_ptr<testing::TempDir> dir;
  v1::JobSpec spec;
  std::unique_ptr<ControlPlane> plane;
};

absl::StatusOr<Fixture> MakeFixture(absl::Duration tick_interval = absl::ZeroDuration()) {
  Fixture fixture;
  TL_ASSIGN_OR_RETURN(fixture.dir, MakeBenchTempDir());
  TL_ASSIGN_OR_RETURN(fixture.spec, MakeBenchSpec(*fixture.dir));
  TL_ASSIGN_OR_RETURN(fixture.plane, ControlPlane::Open(fixture.dir->File("jobs.db"),
                                                        fixture.dir->path(), tick_interval));
  return fixture;
}

// A registered worker running one leased job.
struct SimWorker {
  std::string worker_id;
  std::string session_token;
  v1::ProgressReport report;  // job, attempt, lease token filled; step advanced per report
};

absl::StatusOr<SimWorker> StartWorker(Scheduler& scheduler, const v1::JobSpec& spec,
                                      const std::string& tenant) {
  TL_RETURN_IF_ERROR(scheduler.SubmitJob(tenant, spec).status());
  TL_ASSIGN_OR_RETURN(const v1::RegisterWorkerResponse registered,
                      scheduler.RegisterWorker(BenchWorker(), kCredential));
  v1::LeaseJobRequest request;
  request.set_worker_id(registered.worker_id());
  request.set_session_token(registered.session_token());
  TL_ASSIGN_OR_RETURN(const v1::LeaseJobResponse leased, scheduler.LeaseJob(request, kCredential));
  if (!leased.has_lease()) return absl::InternalError("a worker got no lease");
  SimWorker worker;
  worker.worker_id = registered.worker_id();
  worker.session_token = registered.session_token();
  worker.report.set_worker_id(registered.worker_id());
  worker.report.set_job_id(leased.lease().job_id());
  worker.report.set_attempt(leased.lease().attempt());
  worker.report.set_lease_token(leased.lease().lease_token());
  v1::TrainerUpdate& update = *worker.report.mutable_update();
  update.set_kind(v1::TrainerUpdate::PROGRESS);
  update.set_total_steps(1'000'000'000);
  update.set_loss(2.0);
  update.set_tokens_per_second(140);
  return worker;
}

// `count` workers started from `threads` threads (setup only, untimed).
absl::StatusOr<std::vector<SimWorker>> StartWorkers(Scheduler& scheduler, const v1::JobSpec& spec,
                                                    int count, int threads = 8) {
  std::vector<SimWorker> workers(count);
  std::vector<absl::Status> statuses(threads);
  std::vector<std::thread> starters;
  for (int t = 0; t < threads; ++t) {
    starters.emplace_back([&, t] {
      for (int i = t; i < count && statuses[t].ok(); i += threads) {
        absl::StatusOr<SimWorker> worker = StartWorker(scheduler, spec, "workers");
        if (worker.ok()) {
          workers[i] = *std::move(worker);
        } else {
          statuses[t] = worker.status();
        }
      }
    });
  }
  for (std::thread& starter : starters) starter.join();
  for (const absl::Status& status : statuses) TL_RETURN_IF_ERROR(status);
  return workers;
}

// Sends the next progress report of `worker`.
absl::Status SendReport(Scheduler& scheduler, SimWorker& worker) {
  v1::TrainerUpdate& update = *worker.report.mutable_update();
  update.set_step(update.step() + 1);
  update.set_tokens(int64_t{2048} * update.step());
  return scheduler.ReportProgress(worker.report);
}

absl::Status SendHeartbeat(Scheduler& scheduler, const SimWorker& worker) {
  v1::HeartbeatRequest request;
  request.set_worker_id(worker.worker_id);
  request.set_session_token(worker.session_token);
  request.add_running_job_ids(worker.report.job_id());
  TL_ASSIGN_OR_RETURN(const v1::HeartbeatResponse response, scheduler.Heartbeat(request));
  if (!response.known()) return absl::InternalError("a heartbeat found its worker unknown");
  return absl::OkStatus();
}

// Thread `t` of `threads` calls `call` on each of its workers (every threads-th from t) once a
// second, paced: a slow call delays the next ones instead of capping their rate. Returns the
// calls' latencies in ms.
std::vector<double> PacedLoop(int t, int threads, int worker_count, const std::atomic<bool>& stop,
                              const std::function<void(int worker)>& call) {
  std::vector<double> mine;
  const int owned = (worker_count - t + threads - 1) / threads;
  if (owned <= 0) return mine;
  const auto period = std::chrono::microseconds(1'000'000 / owned);
  auto next = SteadyClock::now();
  for (int i = t; !stop.load(); i += threads) {
    if (i >= worker_count) i = t;
    std::this_thread::sleep_until(next);
    next += period;
    const auto sent = SteadyClock::now();
    call(i);
    mine.push_back(MillisSince(sent));
  }
  return mine;
}

// First error of many threads.
class FirstError {
 public:
  void Set(const absl::Status& status) {
    absl::MutexLock lock(&mu_);
    if (status_.ok()) status_ = status;
  }
  absl::Status Get() {
    absl::MutexLock lock(&mu_);
    return status_;
  }

 private:
  absl::Mutex mu_;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
};

void BM_ControlPlaneLoad(benchmark::State& state) {
  const int worker_count = static_cast<int>(state.range(0));
  const int submitters = static_cast<int>(state.range(1));
  const bool paced_reports = state.range(3) > 0;
  absl::StatusOr<Fixture> fixture =
      MakeFixture(state.range(2) == 0 ? absl::ZeroDuration() : absl::Seconds(state.range(2)));
  absl::StatusOr<std::vector<SimWorker>> workers =
      fixture.ok() ? StartWorkers(fixture->plane->scheduler(), fixture->spec, worker_count)
                   : absl::StatusOr<std::vector<SimWorker>>(fixture.status());
  if (!workers.ok()) {
    state.SkipWithError(workers.status().ToString().c_str());
    return;
  }
  Scheduler& scheduler = fixture->plane->scheduler();
  const v1::JobSpec spec = WithDefaults(fixture->spec);
  for (auto _ : state) {
    std::atomic<bool> stop{false};
    std::atomic<int64_t> reports{0}, heartbeats{0}, submits{0};
    Samples report_ms, heartbeat_ms, submit_ms;
    FirstError error;
    std::vector<std::thread> threads;
    const auto start = SteadyClock::now();
    // No workers: submits alone (no thread spins over an empty worker list).
    const int report_threads = worker_count > 0 ? kReportThreads : 0;
    const int heartbeat_threads = worker_count > 0 ? kHeartbeatThreads : 0;
    auto report = [&](int i) {
      if (const absl::Status status = SendReport(scheduler, (*workers)[i]); !status.ok()) {
        error.Set(status);
        stop = true;
      }
      reports.fetch_add(1);
    };
    for (int t = 0; paced_reports && t < report_threads; ++t) {
      threads.emplace_back(
          [&, t] { report_ms.Merge(PacedLoop(t, kReportThreads, worker_count, stop, report)); });
    }
    for (int t = 0; !paced_reports && t < report_threads; ++t) {
      threads.emplace_back([&, t] {
        std::vector<double> mine;
        while (!stop.load()) {
          for (int i = t; i < worker_count && !stop.load(); i += kReportThreads) {
            const auto sent = SteadyClock::now();
            report(i);
            mine.push_back(MillisSince(sent));
          }
        }
        report_ms.Merge(mine);
      });
    }
    auto heartbeat = [&](int i) {
      if (const absl::Status status = SendHeartbeat(scheduler, (*workers)[i]); !status.ok()) {
        error.Set(status);
        stop = true;
      }
      heartbeats.fetch_add(1);
    };
    for (int t = 0; t < heartbeat_threads; ++t) {
      threads.emplace_back([&, t] {
        heartbeat_ms.Merge(PacedLoop(t, kHeartbeatThreads, worker_count, stop, heartbeat));
      });
    }
    for (int t = 0; t < submitters; ++t) {
      threads.emplace_back([&, t] {
        std::vector<double> mine;
        const std::string tenant = absl::StrCat("client-", t);
        while (!stop.load()) {
          const auto sent = SteadyClock::now();
          const absl::Status status = scheduler.SubmitJob(tenant, spec).status();
          mine.push_back(MillisSince(sent));
          if (!status.ok()) {
            error.Set(status);
            stop = true;
          }
          submits.fetch_add(1);
        }
        submit_ms.Merge(mine);
      });
    }
    std::this_thread::sleep_for(std::chrono::seconds(flag_seconds));
    stop = true;
    for (std::thread& thread : threads) thread.join();
    const double seconds = MillisSince(start) / 1000;
    state.SetIterationTime(seconds);
    if (absl::Status status = error.Get(); !status.ok()) {
      state.SkipWithError(status.ToString().c_str());
      break;
    }
    std::vector<double> r = report_ms.Take(), h = heartbeat_ms.Take(), s = submit_ms.Take();
    state.counters["reports_per_s"] = static_cast<double>(reports.load()) / seconds;
    state.counters["report_p50_ms"] = Quantile(r, 0.5);
    state.counters["report_p99_ms"] = Quantile(r, 0.99);
    state.counters["heartbeats_per_s"] = static_cast<double>(heartbeats.load()) / seconds;
    state.counters["heartbeat_p99_ms"] = Quantile(h, 0.99);
    state.counters["submits_per_s"] = static_cast<double>(submits.load()) / seconds;
    state.counters["submit_p50_ms"] = Quantile(s, 0.5);
    state.counters["submit_p99_ms"] = Quantile(s, 0.99);
  }
}
BENCHMARK(BM_ControlPlaneLoad)
    ->ArgNames({"workers", "submitters", "tick_s", "report_hz"})
    ->Args({1000, 0, 0, 0})
    ->Args({1000, 16, 0, 0})
    ->Args({1000, 16, 0, 1})
    ->Args({1000, 0, 60, 0})
    ->Args({1000, 16, 60, 0})
    ->Args({0, 16, 60, 0})
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kSecond);

// Fills the store with `jobs` jobs from 16 threads, then (one UPDATE on a second connection, as
// history would have left them) marks 90% SUCCEEDED with an end time and spreads the jobs over
// 4 tenants (job id n belongs to tenant-((n - 1) % 4)).
absl::Status FillJobs(Fixture& fixture, int jobs) {
  constexpr int kThreads = 16;
  const v1::JobSpec spec = WithDefaults(fixture.spec);
  std::vector<absl::Status> statuses(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t; i < jobs && statuses[t].ok(); i += kThreads) {
        statuses[t] = fixture.plane->store().Enqueue("tenant", spec).status();
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const absl::Status& status : statuses) TL_RETURN_IF_ERROR(status);
  sqlite3* db = nullptr;
  if (sqlite3_open(fixture.dir->File("jobs.db").c_str(), &db) != SQLITE_OK) {
    sqlite3_close(db);
    return absl::InternalError("cannot open jobs.db for the history update");
  }
  sqlite3_busy_timeout(db, 10'000);
  const std::string sql =
      absl::StrCat("UPDATE jobs SET state = ", static_cast<int>(v1::Job::SUCCEEDED),
                   ", start_time = create_time, end_time = create_time + id WHERE id % 10 != 0; "
                   "UPDATE jobs SET tenant = 'tenant-' || ((id - 1) % 4)");
  char* message = nullptr;
  const int code = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &message);
  const std::string text = message != nullptr ? message : "";
  sqlite3_free(message);
  sqlite3_close(db);
  if (code != SQLITE_OK) return absl::InternalError(absl::StrCat("history update: ", text));
  return absl::OkStatus();
}

// Runs `call` from `callers` threads for flag_seconds; its latencies in ms.
absl::StatusOr<std::vector<double>> TimeCalls(
    int callers, const std::function<absl::Status(std::mt19937_64&)>& call) {
  std::atomic<bool> stop{false};
  Samples samples;
  FirstError error;
  std::vector<std::thread> threads;
  for (int t = 0; t < callers; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 random(t);
      std::vector<double> mine;
      while (!stop.load()) {
        const auto sent = SteadyClock::now();
        const absl::Status status = call(random);
        mine.push_back(MillisSince(sent));
        if (!status.ok()) {
          error.Set(status);
          stop = true;
        }
      }
      samples.Merge(mine);
    });
  }
  std::this_thread::sleep_for(std::chrono::seconds(flag_seconds));
  stop = true;
  for (std::thread& thread : threads) thread.join();
  TL_RETURN_IF_ERROR(error.Get());
  return samples.Take();
}

void BM_ReadLatency(benchmark::State& state) {
  const int jobs = flag_read_jobs;
  absl::StatusOr<Fixture> fixture = MakeFixture();
  absl::Status status = fixture.status();
  if (status.ok()) status = FillJobs(*fixture, jobs);
  if (!status.ok()) {
    state.SkipWithError(status.ToString().c_str());
    return;
  }
  Scheduler& scheduler = fixture->plane->scheduler();
  const int callers = static_cast<int>(state.range(0));
  for (auto _ : state) {
    const auto start = SteadyClock::now();
    absl::StatusOr<std::vector<double>> gets = TimeCalls(callers, [&](std::mt19937_64& random) {
      const int id = 1 + static_cast<int>(random() % jobs);
      return scheduler.GetJob(absl::StrCat("tenant-", (id - 1) % 4), absl::StrCat(id)).status();
    });
    absl::StatusOr<std::vector<double>> lists = TimeCalls(callers, [&](std::mt19937_64& random) {
      absl::StatusOr<JobPage> page =
          scheduler.ListJobs(absl::StrCat("tenant-", random() % 4), {}, 0, "");
      if (page.ok() && page->jobs.size() != 100) {
        return absl::InternalError(absl::StrCat("a first page of ", page->jobs.size(), " jobs"));
      }
      return page.status();
    });
    state.SetIterationTime(MillisSince(start) / 1000);
    if (!gets.ok() || !lists.ok()) {
      state.SkipWithError((gets.ok() ? lists.status() : gets.status()).ToString().c_str());
      break;
    }
    state.counters["jobs"] = jobs;
    state.counters["get_per_s"] = static_cast<double>(gets->size()) / flag_seconds;
    state.counters["get_p50_ms"] = Quantile(*gets, 0.5);
    state.counters["get_p99_ms"] = Quantile(*gets, 0.99);
    state.counters["list_per_s"] = static_cast<double>(lists->size()) / flag_seconds;
    state.counters["list_p50_ms"] = Quantile(*lists, 0.5);
    state.counters["list_p99_ms"] = Quantile(*lists, 0.99);
  }
}
BENCHMARK(BM_ReadLatency)
    ->ArgNames({"callers"})
    ->Arg(1)
    ->Arg(8)
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kSecond);

void BM_LeaseToDispatch(benchmark::State& state) {
  const int idle = static_cast<int>(state.range(0));
  absl::StatusOr<Fixture> fixture = MakeFixture();
  if (!fixture.ok()) {
    state.SkipWithError(fixture.status().ToString().c_str());
    return;
  }
  Scheduler& scheduler = fixture->plane->scheduler();
  // Each worker polls until it holds one lease, then stops: the pool stays idle and waiting.
  absl::Mutex mu;
  int leased = 0;
  SteadyClock::time_point last_lease;
  FirstError error;
  std::vector<std::thread> workers;
  std::atomic<bool> stop{false};
  for (int w = 0; w < idle; ++w) {
    workers.emplace_back([&] {
      absl::StatusOr<v1::RegisterWorkerResponse> registered =
          scheduler.RegisterWorker(BenchWorker(), kCredential);
      if (!registered.ok()) {
        error.Set(registered.status());
        return;
      }
      v1::LeaseJobRequest request;
      request.set_worker_id(registered->worker_id());
      request.set_session_token(registered->session_token());
      request.set_wait_seconds(30);
      while (!stop.load()) {
        absl::StatusOr<v1::LeaseJobResponse> response = scheduler.LeaseJob(request, kCredential);
        if (!response.ok()) {
          error.Set(response.status());
          return;
        }
        if (response->has_lease()) {
          absl::MutexLock lock(&mu);
          ++leased;
          last_lease = SteadyClock::now();
          return;
        }
      }
    });
  }
  std::vector<double> dispatch_ms;
  const v1::JobSpec& spec = fixture->spec;
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // let the polls start waiting
  for (auto _ : state) {
    const auto submitted = SteadyClock::now();
    const absl::Status status = scheduler.SubmitJob("tenant", spec).status();
    bool got = false;
    {
      absl::MutexLock lock(&mu);
      const int want = static_cast<int>(dispatch_ms.size()) + 1;
      auto dispatched = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return leased >= want; };
      got = mu.AwaitWithTimeout(absl::Condition(&dispatched), absl::Seconds(10));
      if (got) {
        dispatch_ms.push_back(
            std::chrono::duration<double, std::milli>(last_lease - submitted).count());
      }
    }
    if (!status.ok() || !got) {
      state.SkipWithError(status.ok() ? "no worker leased the job within 10 s"
                                      : status.ToString().c_str());
      break;
    }
  }
  stop = true;
  scheduler.Stop();  // wakes the polls still waiting
  for (std::thread& worker : workers) worker.join();
  if (absl::Status status = error.Get(); !status.ok()) {
    state.SkipWithError(status.ToString().c_str());
    return;
  }
  state.counters["dispatch_p50_ms"] = Quantile(dispatch_ms, 0.5);
  state.counters["dispatch_p99_ms"] = Quantile(dispatch_ms, 0.99);
}
BENCHMARK(BM_LeaseToDispatch)
    ->ArgNames({"idle_workers"})
    ->Arg(100)
    ->Iterations(50)
    ->Unit(benchmark::kMillisecond);

// ---- Kill and recover ----

// The child: runs the core on `db_path` under load and writes "S <job>\n" for each acknowledged
// submit and "P <job> <step>\n" for each acknowledged progress report to `fd` (one write() each:
// atomic on a pipe), "R\n" once the load runs. Never returns: it is SIGKILLed.
[[noreturn]] void RunKilledChild(const std::string& db_path, const std::string& data_root,
                                 const v1::JobSpec& spec, int fd) {
  auto write_line = [fd](const std::string& line) {
    if (write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) _exit(3);
  };
  absl::StatusOr<std::unique_ptr<ControlPlane>> plane = ControlPlane::Open(db_path, data_root);
  if (!plane.ok()) _exit(2);
  Scheduler& scheduler = (*plane)->scheduler();
  absl::StatusOr<std::vector<SimWorker>> workers = StartWorkers(scheduler, spec, 64);
  if (!workers.ok()) _exit(2);
  write_line("R\n");
  std::vector<std::thread> threads;
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&, t] {
      while (true) {
        for (int i = t; i < 64; i += 16) {
          SimWorker& worker = (*workers)[i];
          if (SendReport(scheduler, worker).ok()) {
            write_line(absl::StrCat("P ", worker.report.job_id(), " ",
                                    worker.report.update().step(), "\n"));
          }
        }
      }
    });
  }
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      const std::string tenant = absl::StrCat("client-", t);
      while (true) {
        absl::StatusOr<EnqueueResult> submitted = scheduler.SubmitJob(tenant, spec);
        if (submitted.ok()) write_line(absl::StrCat("S ", submitted->update.job.id(), "\n"));
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  _exit(0);
}

void BM_KillDuringLoad(benchmark::State& state) {
  absl::StatusOr<std::unique_ptr<testing::TempDir>> dir = MakeBenchTempDir();
  absl::StatusOr<v1::JobSpec> spec =
      dir.ok() ? MakeBenchSpec(**dir) : absl::StatusOr<v1::JobSpec>(dir.status());
  if (!spec.ok()) {
    state.SkipWithError(spec.status().ToString().c_str());
    return;
  }
  const std::string db_path = (*dir)->File("jobs.db");
  for (auto _ : state) {
    int fds[2];
    if (pipe(fds) != 0) {
      state.SkipWithError("pipe failed");
      break;
    }
    const pid_t child = fork();
    if (child == 0) {
      close(fds[0]);
      RunKilledChild(db_path, (*dir)->path(), *spec, fds[1]);
    }
    close(fds[1]);
    std::string received;
    auto read_some = [&](int timeout_ms) {
      pollfd p{fds[0], POLLIN, 0};
      if (poll(&p, 1, timeout_ms) <= 0) return true;
      char buffer[65536];
      const ssize_t n = read(fds[0], buffer, sizeof(buffer));
      if (n <= 0) return false;  // EOF: the child is gone
      received.append(buffer, n);
      return true;
    };
    const absl::Time ready_deadline = absl::Now() + absl::Seconds(120);
    while (received.find("R\n") == std::string::npos && absl::Now() < ready_deadline) {
      if (!read_some(100)) break;
    }
    const absl::Time kill_at = absl::Now() + absl::Seconds(flag_seconds);
    while (absl::Now() < kill_at) {
      if (!read_some(50)) break;
    }
    kill(child, SIGKILL);
    while (read_some(1000)) {
    }
    close(fds[0]);
    int wait_status = 0;
    waitpid(child, &wait_status, 0);
    if (received.find("R\n") == std::string::npos) {
      state.SkipWithError("the child did not start its load");
      break;
    }
    // What was acknowledged: submitted job ids, and the newest acknowledged step per job.
    std::vector<std::string> submitted;
    std::map<std::string, int> newest_step;
    int64_t reports = 0;
    for (absl::string_view line : absl::StrSplit(received, '\n')) {
      const std::vector<absl::string_view> fields = absl::StrSplit(line, ' ');
      if (fields.size() == 2 && fields[0] == "S") submitted.emplace_back(fields[1]);
      int step = 0;
      if (fields.size() == 3 && fields[0] == "P" && absl::SimpleAtoi(fields[2], &step)) {
        ++reports;
        int& newest = newest_step[std::string(fields[1])];
        newest = std::max(newest, step);
      }
    }
    RealClock clock;
    absl::StatusOr<std::unique_ptr<JobStore>> store = JobStore::Open(db_path, clock);
    if (!store.ok()) {
      state.SkipWithError(store.status().ToString().c_str());
      break;
    }
    int64_t lost_submits = 0, lost_reports = 0;
    for (const std::string& job_id : submitted) {
      if (!(*store)->GetJob(job_id).ok()) ++lost_submits;
    }
    for (const auto& [job_id, step] : newest_step) {
      absl::StatusOr<v1::Job> job = (*store)->GetJob(job_id);
      if (!job.ok() || job->progress().step() < step) ++lost_reports;
    }
    state.counters["acked_submits"] = static_cast<double>(submitted.size());
    state.counters["acked_reports"] = static_cast<double>(reports);
    state.counters["lost_submits"] = static_cast<double>(lost_submits);
    state.counters["lost_reports"] = static_cast<double>(lost_reports);  // jobs behind their ack
    state.counters["killed"] = WIFSIGNALED(wait_status) ? 1 : 0;
    if (lost_submits + lost_reports > 0) {
      state.SkipWithError(absl::StrCat(lost_submits, " acknowledged submits and ", lost_reports,
                                       " jobs' acknowledged reports lost after SIGKILL")
                              .c_str());
      break;
    }
  }
}
BENCHMARK(BM_KillDuringLoad)->Iterations(1)->Unit(benchmark::kSecond);

// Removes --seconds=N and --read_jobs=N from argv (Google Benchmark rejects flags it does not
// know).
void ParseOwnFlags(int& argc, char** argv) {
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    int value = 0;
    if (absl::StartsWith(arg, "--seconds=") &&
        absl::SimpleAtoi(arg.substr(strlen("--seconds=")), &value) && value > 0) {
      flag_seconds = value;
    } else if (absl::StartsWith(arg, "--read_jobs=") &&
               absl::SimpleAtoi(arg.substr(strlen("--read_jobs=")), &value) && value > 0) {
      flag_read_jobs = value;
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
}

}  // namespace
}  // namespace tuneledger::bench

int main(int argc, char** argv) {
  tuneledger::bench::ParseOwnFlags(argc, argv);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
