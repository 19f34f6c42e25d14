// job_store_bench: durable writes per second of the JobStore, next to plain SQLite doing the same
// fsyncs (the baseline). Every write here is durable when it returns (WAL, synchronous=FULL), so
// the numbers are bounded by the disk's fsync rate: run it on the disk the server will use
// (TMPDIR=/that/disk).
//
//   BM_JobStoreEnqueue/threads:N        Enqueue (job row + SUBMITTED event): 1 thread pays one
//                                       fsync per submit; 8 and 16 threads share fsyncs (group
//                                       commit, server/core/group_commit.h)
//   BM_PlainSqliteSubmit/batch:B        baseline: raw SQLite, the same PRAGMAs, a job row and an
//                                       event row per submit, B submits per fsync'd transaction
//                                       (B=1: what one thread can at best do; B=32: what 32
//                                       writers sharing each commit can at best do)
//   BM_JobStoreRecordProgress/threads:N the write behind every progress report (N running jobs)
//   BM_JobStoreLeaseProgressFinish      one attempt's life: LeaseNext + RecordProgress + Finish
//                                       (its Enqueue runs with the timer paused)
//   BM_JobStoreCountJobsByState/jobs:N  the read behind the job gauges (after every submit and
//                                       finish) with N jobs stored: it scans every job
//
// items_per_second counts submits, reports or cycles.
#include <benchmark/benchmark.h>
#include <sqlite3.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/clock.h"
#include "base/status_macros.h"
#include "bench/bench_jobs.h"
#include "server/core/job_spec_validator.h"
#include "server/core/job_store.h"
#include "tuneledger/v1/jobs.pb.h"

namespace tuneledger::bench {
namespace {

constexpr int kMaxThreads = 8;
constexpr int kManyThreads = 16;  // issue 13: 16 submitting clients

// A store in a fresh temp dir, shared by the threads of one benchmark run. Built by Setup,
// dropped by Teardown; Google Benchmark runs them on the main thread around each run.
struct StoreFixture {
  std::unique_ptr<testing::TempDir> dir;
  RealClock clock;
  std::unique_ptr<JobStore> store;
  v1::JobSpec spec;  // with defaults, as the scheduler hands it to Enqueue
  std::string worker_id;
  std::vector<std::string> running_jobs;  // one per thread (RecordProgress)
};

StoreFixture* fixture = nullptr;  // between Setup and Teardown
absl::Status fixture_status;      // why Setup failed, reported by the benchmark body

absl::StatusOr<std::unique_ptr<StoreFixture>> MakeFixture(int running_jobs) {
  auto made = std::make_unique<StoreFixture>();
  TL_ASSIGN_OR_RETURN(made->dir, MakeBenchTempDir());
  TL_ASSIGN_OR_RETURN(made->store, JobStore::Open(made->dir->File("jobs.db"), made->clock));
  TL_ASSIGN_OR_RETURN(const v1::JobSpec spec, MakeBenchSpec(*made->dir));
  made->spec = WithDefaults(spec);
  TL_ASSIGN_OR_RETURN(const v1::Worker worker, made->store->RegisterWorker(BenchWorker()));
  made->worker_id = worker.id();
  for (int i = 0; i < running_jobs; ++i) {
    TL_RETURN_IF_ERROR(made->store->Enqueue("tenant", made->spec).status());
    TL_ASSIGN_OR_RETURN(const std::optional<AttemptRecord> lease,
                        made->store->LeaseNext(made->worker_id, 1));
    if (!lease.has_value()) return absl::InternalError("LeaseNext found no job to lease");
    made->running_jobs.push_back(lease->job.id());
  }
  return made;
}

void SetUpStore(int running_jobs) {
  absl::StatusOr<std::unique_ptr<StoreFixture>> made = MakeFixture(running_jobs);
  fixture_status = made.status();
  fixture = made.ok() ? made->release() : nullptr;
}
void SetUpEmptyStore(const benchmark::State&) { SetUpStore(0); }
void SetUpRunningJobs(const benchmark::State& state) { SetUpStore(state.threads()); }
void TearDownStore(const benchmark::State&) {
  delete fixture;
  fixture = nullptr;
}

// False (and the run marked as failed) when Setup could not build the store.
bool FixtureReady(benchmark::State& state) {
  if (fixture != nullptr) return true;
  state.SkipWithError(fixture_status.ToString().c_str());
  return false;
}

AttemptProgress ProgressUpdate(int step) {
  AttemptProgress update;
  update.attempt = 1;
  update.progress.emplace();
  update.progress->set_step(step);
  update.progress->set_total_steps(1'000'000);
  update.progress->set_loss(2.0);
  update.progress->set_tokens(int64_t{2048} * step);
  update.progress->set_tokens_per_second(140);
  update.bill.seconds = step;
  update.bill.usd = 0.001 * step;
  update.bill.job_cost.set_accrued_usd(update.bill.usd);
  return update;
}

void BM_JobStoreEnqueue(benchmark::State& state) {
  if (!FixtureReady(state)) return;
  const std::string tenant = absl::StrCat("tenant-", state.thread_index());
  for (auto _ : state) {
    absl::StatusOr<EnqueueResult> enqueued = fixture->store->Enqueue(tenant, fixture->spec);
    if (!enqueued.ok()) {
      state.SkipWithError(enqueued.status().ToString().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_JobStoreEnqueue)
    ->Setup(SetUpEmptyStore)
    ->Teardown(TearDownStore)
    ->Threads(1)
    ->Threads(kMaxThreads)
    ->Threads(kManyThreads)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

void BM_JobStoreRecordProgress(benchmark::State& state) {
  if (!FixtureReady(state)) return;
  const std::string& job_id = fixture->running_jobs[state.thread_index()];
  int step = 0;
  for (auto _ : state) {
    absl::StatusOr<JobUpdate> recorded =
        fixture->store->RecordProgress(job_id, ProgressUpdate(++step));
    if (!recorded.ok()) {
      state.SkipWithError(recorded.status().ToString().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_JobStoreRecordProgress)
    ->Setup(SetUpRunningJobs)
    ->Teardown(TearDownStore)
    ->Threads(1)
    ->Threads(kMaxThreads)
    ->Threads(kManyThreads)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

void BM_JobStoreLeaseProgressFinish(benchmark::State& state) {
  if (!FixtureReady(state)) return;
  JobStore& store = *fixture->store;
  AttemptEnd end;
  end.attempt = 1;
  end.outcome = "SUCCEEDED";
  for (auto _ : state) {
    state.PauseTiming();
    const absl::Status enqueued = store.Enqueue("tenant", fixture->spec).status();
    state.ResumeTiming();
    absl::StatusOr<std::optional<AttemptRecord>> lease = store.LeaseNext(fixture->worker_id, 1);
    absl::Status status = enqueued.ok() ? lease.status() : enqueued;
    if (status.ok() && !lease->has_value()) status = absl::InternalError("no job to lease");
    if (status.ok()) {
      const std::string& job_id = (*lease)->job.id();
      status = store.RecordProgress(job_id, ProgressUpdate(1)).status();
      end.end_time = absl::Now();
      if (status.ok()) {
        status = store
                     .Finish(job_id, end, v1::Job::SUCCEEDED, v1::Job::REASON_UNSPECIFIED,
                             "/adapters/" + job_id)
                     .status();
      }
    }
    if (!status.ok()) {
      state.SkipWithError(status.ToString().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_JobStoreLeaseProgressFinish)
    ->Setup(SetUpEmptyStore)
    ->Teardown(TearDownStore)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// Fills the store with `jobs` QUEUED jobs from 8 threads (group commit keeps this to seconds).
void SetUpJobHistory(const benchmark::State& state) {
  SetUpStore(0);
  if (fixture == nullptr) return;
  const int64_t jobs = state.range(0);
  std::vector<std::thread> threads;
  std::vector<absl::Status> statuses(kMaxThreads);
  for (int t = 0; t < kMaxThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int64_t i = t; i < jobs && statuses[t].ok(); i += kMaxThreads) {
        statuses[t] = fixture->store->Enqueue("tenant", fixture->spec).status();
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const absl::Status& status : statuses) {
    if (status.ok()) continue;
    fixture_status = status;
    TearDownStore(state);
    return;
  }
}

// What the scheduler's gauge refresh reads after every submit, finish and tick: the cost grows
// with every job the store has ever held.
void BM_JobStoreCountJobsByState(benchmark::State& state) {
  if (!FixtureReady(state)) return;
  for (auto _ : state) {
    absl::StatusOr<std::map<std::string, int64_t>> counts = fixture->store->CountJobsByState();
    if (!counts.ok()) {
      state.SkipWithError(counts.status().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(counts->size());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_JobStoreCountJobsByState)
    ->ArgName("jobs")
    ->Arg(1000)
    ->Arg(10000)
    ->Setup(SetUpJobHistory)
    ->Teardown(TearDownStore)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// ---- Baseline: plain SQLite ----

// A raw connection with the store's PRAGMAs and two STRICT tables shaped like the rows Enqueue
// writes (a job with its serialized spec, an event).
class PlainSqlite {
 public:
  static absl::StatusOr<std::unique_ptr<PlainSqlite>> Open(const std::string& path) {
    sqlite3* db = nullptr;
    const int code =
        sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
    auto plain = std::unique_ptr<PlainSqlite>(new PlainSqlite(db));
    if (code != SQLITE_OK) return plain->Error("open " + path);
    TL_RETURN_IF_ERROR(plain->Exec(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
        "CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, tenant TEXT NOT NULL,"
        "  spec BLOB NOT NULL, state INTEGER NOT NULL, create_time INTEGER NOT NULL) STRICT;"
        "CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, job_id INTEGER NOT NULL,"
        "  time INTEGER NOT NULL, kind INTEGER NOT NULL) STRICT;"));
    TL_RETURN_IF_ERROR(
        plain->Prepare("INSERT INTO jobs (tenant, spec, state, create_time) VALUES (?1, ?2, 1, ?3)",
                       &plain->insert_job_));
    TL_RETURN_IF_ERROR(plain->Prepare("INSERT INTO events (job_id, time, kind) VALUES (?1, ?2, 1)",
                                      &plain->insert_event_));
    return plain;
  }
  ~PlainSqlite() {
    sqlite3_finalize(insert_job_);
    sqlite3_finalize(insert_event_);
    sqlite3_close_v2(db_);
  }
  PlainSqlite(const PlainSqlite&) = delete;
  PlainSqlite& operator=(const PlainSqlite&) = delete;

  // `count` submits (job row + event row each) in one fsync'd transaction.
  absl::Status SubmitBatch(int count, const std::string& spec_bytes) {
    TL_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
    for (int i = 0; i < count; ++i) {
      const int64_t now = absl::ToUnixMicros(absl::Now());
      sqlite3_bind_text(insert_job_, 1, "tenant", -1, SQLITE_STATIC);
      sqlite3_bind_blob(insert_job_, 2, spec_bytes.data(), static_cast<int>(spec_bytes.size()),
                        SQLITE_STATIC);
      sqlite3_bind_int64(insert_job_, 3, now);
      TL_RETURN_IF_ERROR(StepDone(insert_job_));
      sqlite3_bind_int64(insert_event_, 1, sqlite3_last_insert_rowid(db_));
      sqlite3_bind_int64(insert_event_, 2, now);
      TL_RETURN_IF_ERROR(StepDone(insert_event_));
    }
    return Exec("COMMIT");
  }

 private:
  explicit PlainSqlite(sqlite3* db) : db_(db) {}

  absl::Status Error(const std::string& what) const {
    return absl::InternalError(absl::StrCat(what, ": ", sqlite3_errmsg(db_)));
  }
  absl::Status Exec(const char* sql) {
    return sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) == SQLITE_OK ? absl::OkStatus()
                                                                          : Error(sql);
  }
  absl::Status Prepare(const char* sql, sqlite3_stmt** statement) {
    return sqlite3_prepare_v2(db_, sql, -1, statement, nullptr) == SQLITE_OK ? absl::OkStatus()
                                                                             : Error(sql);
  }
  absl::Status StepDone(sqlite3_stmt* statement) {
    const int code = sqlite3_step(statement);
    sqlite3_reset(statement);
    return code == SQLITE_DONE ? absl::OkStatus() : Error(sqlite3_sql(statement));
  }

  sqlite3* db_;
  sqlite3_stmt* insert_job_ = nullptr;
  sqlite3_stmt* insert_event_ = nullptr;
};

void BM_PlainSqliteSubmit(benchmark::State& state) {
  const int batch = static_cast<int>(state.range(0));
  absl::StatusOr<std::unique_ptr<testing::TempDir>> dir = MakeBenchTempDir();
  absl::StatusOr<std::unique_ptr<PlainSqlite>> db =
      dir.ok() ? PlainSqlite::Open((*dir)->File("plain.db")) : dir.status();
  absl::StatusOr<v1::JobSpec> spec = dir.ok() ? MakeBenchSpec(**dir) : dir.status();
  if (!db.ok() || !spec.ok()) {
    state.SkipWithError((db.ok() ? spec.status() : db.status()).ToString().c_str());
    return;
  }
  const std::string spec_bytes = WithDefaults(*spec).SerializeAsString();
  for (auto _ : state) {
    const absl::Status status = (*db)->SubmitBatch(batch, spec_bytes);
    if (!status.ok()) {
      state.SkipWithError(status.ToString().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(BM_PlainSqliteSubmit)
    ->ArgName("batch")
    ->Arg(1)
    ->Arg(32)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace tuneledger::bench

BENCHMARK_MAIN();
