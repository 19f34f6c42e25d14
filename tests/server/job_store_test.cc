#include "server/core/job_store.h"

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "base/clock.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "server/core/job_spec_validator.h"
#include "server/core/job_store_rows.h"
#include "server/core/sqlite_db.h"
#include "tests/server/job_fixtures.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace tuneledger {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;
using ::tuneledger::testing::CpuWorker;
using ::tuneledger::testing::EventKinds;
using ::tuneledger::testing::StatusIs;
using ::tuneledger::testing::TempDir;
using ::tuneledger::testing::ValidSpec;

v1::JobSpec Spec(int priority = 0, int max_attempts = 3, const std::string& request_id = "") {
  v1::JobSpec spec = ValidSpec();
  spec.set_priority(priority);
  spec.set_max_attempts(max_attempts);
  spec.set_client_request_id(request_id);
  return WithDefaults(spec);
}

AttemptEnd End(int attempt, const std::string& outcome, absl::Time when, double usd = 0) {
  AttemptEnd end;
  end.attempt = attempt;
  end.outcome = outcome;
  end.end_time = when;
  end.bill.usd = usd;
  end.bill.seconds = 60;
  end.bill.job_cost.set_accrued_usd(usd);
  return end;
}

class JobStoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<JobStore> Open(JobStoreOptions options = {}) {
    absl::StatusOr<std::unique_ptr<JobStore>> store =
        JobStore::Open(dir_.File("jobs.db"), clock_, options);
    EXPECT_OK(store);
    return store.ok() ? *std::move(store) : nullptr;
  }
  std::string Enqueue(JobStore& store, const v1::JobSpec& spec, const std::string& tenant = "t") {
    absl::StatusOr<EnqueueResult> result = store.Enqueue(tenant, spec);
    EXPECT_OK(result);
    return result.ok() ? result->update.job.id() : "";
  }
  std::string Register(JobStore& store, int gpus = 1) {
    absl::StatusOr<v1::Worker> worker = store.RegisterWorker(CpuWorker(3.6, false, gpus));
    EXPECT_OK(worker);
    return worker.ok() ? worker->id() : "";
  }

  // Creates the store's file at schema `version` (an older server's) and closes it.
  void CreateAtVersion(int version) {
    JobStoreOptions older;
    older.schema_version = version;
    std::unique_ptr<JobStore> old = Open(older);
    ASSERT_NE(old, nullptr);
    EXPECT_EQ(*old->SchemaVersion(), version);
  }
  // Inserts a job as a version-1 server wrote it (the columns of that schema only).
  void InsertVersionOneJob(const std::string& tenant, v1::Job::State state) {
    absl::StatusOr<std::unique_ptr<SqliteDb>> db = SqliteDb::Open(dir_.File("jobs.db"));
    ASSERT_OK(db);
    const std::string insert = absl::StrCat(
        "INSERT INTO jobs (tenant, client_request_id, priority, gpus, max_attempts, spec, state, "
        "reason, message, attempts, worker_id, progress, accrued_usd, gpu_hours, projected_usd, "
        "rate_usd_per_hour, adapter_path, last_checkpoint, thresholds_crossed, overrun_raised, "
        "create_time) VALUES ('",
        tenant, "', '', 0, 1, 3, X'", absl::BytesToHexString(Spec().SerializeAsString()), "', ",
        static_cast<int>(state), ", 0, '', 0, '', X'', 0, 0, 0, 0, '', '', 0, 0, 0)");
    ASSERT_OK((*db)->Exec(insert.c_str()));
  }

  TempDir dir_;
  FakeClock clock_;
};

TEST_F(JobStoreTest, JobsEventsAndAttemptsSurviveCloseAndReopen) {
  std::vector<v1::Job> jobs_before;
  std::map<std::string, std::vector<v1::JobEvent>> events_before;
  std::map<std::string, std::vector<v1::AttemptCost>> attempts_before;
  {
    std::unique_ptr<JobStore> store = Open();
    ASSERT_NE(store, nullptr);
    const std::string running = Enqueue(*store, Spec(5));
    const std::string cancelled = Enqueue(*store, Spec(1));
    const std::string queued = Enqueue(*store, Spec(0));
    const std::string worker = Register(*store);
    clock_.Advance(absl::Seconds(3));
    ASSERT_OK(store->LeaseNext(worker, 1));
    AttemptProgress progress;
    progress.attempt = 1;
    progress.progress.emplace();
    progress.progress->set_step(10);
    progress.progress->set_loss(2.5);
    progress.bill.usd = 0.25;
    progress.bill.job_cost.set_accrued_usd(0.25);
    ASSERT_OK(store->RecordProgress(running, progress));
    ASSERT_OK(store->RecordCheckpoint(running, 1, 10, "/ckpt/step-10"));
    ASSERT_OK(store->Cancel(cancelled, v1::Job::USER, "no longer needed", std::nullopt));
    for (const std::string& id : {running, cancelled, queued}) {
      jobs_before.push_back(*store->GetJob(id));
      events_before[id] = *store->ListJobEvents(id);
      attempts_before[id] = *store->ListAttempts(id);
    }
  }
  std::unique_ptr<JobStore> reopened = Open();
  ASSERT_NE(reopened, nullptr);
  for (const v1::Job& before : jobs_before) {
    absl::StatusOr<v1::Job> after = reopened->GetJob(before.id());
    ASSERT_OK(after);
    EXPECT_TRUE(MessageDifferencer::Equals(before, *after)) << "expected:\n"
                                                            << before.DebugString() << "actual:\n"
                                                            << after->DebugString();
    absl::StatusOr<std::vector<v1::JobEvent>> events = reopened->ListJobEvents(before.id());
    ASSERT_OK(events);
    ASSERT_EQ(events->size(), events_before[before.id()].size());
    for (size_t i = 0; i < events->size(); ++i) {
      EXPECT_TRUE(MessageDifferencer::Equals(events_before[before.id()][i], (*events)[i]))
          << "expected:\n"
          << events_before[before.id()][i].DebugString() << "actual:\n"
          << (*events)[i].DebugString();
    }
    absl::StatusOr<std::vector<v1::AttemptCost>> attempts = reopened->ListAttempts(before.id());
    ASSERT_OK(attempts);
    ASSERT_EQ(attempts->size(), attempts_before[before.id()].size());
    for (size_t i = 0; i < attempts->size(); ++i) {
      EXPECT_TRUE(MessageDifferencer::Equals(attempts_before[before.id()][i], (*attempts)[i]));
    }
  }
  EXPECT_EQ(jobs_before[0].state(), v1::Job::RUNNING);
  EXPECT_EQ(jobs_before[0].last_checkpoint(), "/ckpt/step-10");
  EXPECT_EQ(jobs_before[0].progress().step(), 10);
  EXPECT_THAT(
      EventKinds(events_before[jobs_before[0].id()]),
      ElementsAre(v1::JobEvent::SUBMITTED, v1::JobEvent::STARTED, v1::JobEvent::CHECKPOINT));
  EXPECT_EQ(jobs_before[1].state(), v1::Job::CANCELLED);
  EXPECT_EQ(jobs_before[1].reason(), v1::Job::USER);
  EXPECT_THAT(attempts_before[jobs_before[0].id()], SizeIs(1));
}

// A gang's workers and rank 0's rendezvous slot (AttemptPlacement) are stored with the lease
// and read back with the running attempt, across a reopen; a damaged gang column is DATA_LOSS.
TEST_F(JobStoreTest, AGangsPlacementIsReadBackWithItsRunningAttempt) {
  AttemptPlacement placement;
  {
    std::unique_ptr<JobStore> store = Open();
    ASSERT_NE(store, nullptr);
    v1::JobSpec spec = Spec(0);
    spec.set_gpus(5);
    const std::string job = Enqueue(*store, spec);
    const std::string first = Register(*store, 2);
    const std::string second = Register(*store, 3);
    placement.members = {{first, 2}, {second, 3}};
    placement.rendezvous_slot = 3;
    absl::StatusOr<std::optional<AttemptRecord>> leased =
        store->LeaseToGang(job, first, GangPricing{3.6, 3.6, false}, placement);
    ASSERT_OK(leased);
    ASSERT_TRUE(leased->has_value());
    EXPECT_EQ((*leased)->placement.members, placement.members);
  }
  std::unique_ptr<JobStore> store = Open();
  ASSERT_NE(store, nullptr);
  absl::StatusOr<std::vector<AttemptRecord>> running = store->ListRunningAttempts();
  ASSERT_OK(running);
  ASSERT_EQ(running->size(), 1u);
  EXPECT_EQ((*running)[0].placement.members, placement.members);
  EXPECT_EQ((*running)[0].placement.rendezvous_slot, 3);

  EXPECT_EQ(GangColumn(placement.members),
            absl::StrCat(placement.members[0].first, ":2,", placement.members[1].first, ":3"));
  for (const char* damaged : {"w-1", "w-1:", ":2", "w-1:2:3", "w-1:0", "w-1:x", "w-1:2,"}) {
    EXPECT_THAT(GangFromColumn(damaged), StatusIs(absl::StatusCode::kDataLoss)) << damaged;
  }
  absl::StatusOr<std::vector<std::pair<std::string, int>>> none = GangFromColumn("");
  ASSERT_OK(none);
  EXPECT_TRUE(none->empty());
}

TEST_F(JobStoreTest, IllegalTransitionsAreRefusedAndChangeNothing) {
  std::unique_ptr<JobStore> store = Open();
  const std::string worker = Register(*store);
  const std::string job = Enqueue(*store, Spec());

  // Not running yet: no progress, no finish, no requeue.
  AttemptProgress progress;
  progress.attempt = 1;
  EXPECT_THAT(store->RecordProgress(job, progress),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("is QUEUED")));
  EXPECT_THAT(store->Finish(job, End(1, "SUCCEEDED", clock_.Now()), v1::Job::SUCCEEDED,
                            v1::Job::REASON_UNSPECIFIED, "/adapter"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("is QUEUED")));
  EXPECT_THAT(store->Requeue(job, End(1, "LOST", clock_.Now())),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("is QUEUED")));

  ASSERT_OK(store->LeaseNext(worker, 1));
  // A stale attempt number is refused.
  EXPECT_THAT(store->RecordCheckpoint(job, 2, 5, "/x"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not attempt 2")));
  ASSERT_OK(store->Finish(job, End(1, "SUCCEEDED", clock_.Now()), v1::Job::SUCCEEDED,
                          v1::Job::REASON_UNSPECIFIED, "/adapter"));
  const size_t events = store->ListJobEvents(job)->size();

  // A finished job cannot be cancelled, finished again or requeued.
  EXPECT_THAT(
      store->Cancel(job, v1::Job::USER, "", std::nullopt),
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("job " + job + " is SUCCEEDED")));
  EXPECT_THAT(store->Finish(job, End(1, "FAILED", clock_.Now()), v1::Job::FAILED,
                            v1::Job::TRAINER_ERROR, ""),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("is SUCCEEDED")));
  EXPECT_THAT(store->Requeue(job, End(1, "PREEMPTED", clock_.Now())),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("is SUCCEEDED")));
  EXPECT_EQ(store->ListJobEvents(job)->size(), events) << "refused verbs write no events";
  EXPECT_EQ(store->GetJob(job)->state(), v1::Job::SUCCEEDED);
  EXPECT_EQ(store->GetJob(job)->adapter_path(), "/adapter");

  // Unknown ids.
  EXPECT_THAT(store->GetJob("999"), StatusIs(absl::StatusCode::kNotFound, HasSubstr("999")));
  EXPECT_THAT(store->GetJob("abc"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store->LeaseNext("w-404", 1), StatusIs(absl::StatusCode::kNotFound));
  ASSERT_OK(store->SetWorkerGone(worker, v1::Worker::LOST));
  EXPECT_THAT(store->LeaseNext(worker, 1),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("LOST")));
  EXPECT_THAT(store->TouchWorker(worker), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(JobStoreTest, EightThreadsSubmittingAndTransitioningLoseNothing) {
  std::unique_ptr<JobStore> store = Open();
  constexpr int kThreads = 8;
  constexpr int kJobsPerThread = 20;
  std::atomic<int> finished{0};
  std::atomic<int> cancelled{0};
  std::atomic<int> failures{0};
  std::vector<std::vector<std::string>> ids(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string tenant = "tenant-" + std::to_string(t);
      absl::StatusOr<v1::Worker> worker = store->RegisterWorker(CpuWorker());
      if (!worker.ok()) ++failures;
      for (int i = 0; i < kJobsPerThread; ++i) {
        absl::StatusOr<EnqueueResult> job = store->Enqueue(tenant, Spec(i % 3));
        if (job.ok()) {
          ids[t].push_back(job->update.job.id());
        } else {
          ++failures;
        }
        if (i % 2 == 1 && worker.ok()) {
          // Lease whatever is next (maybe another thread's job) and finish it.
          absl::StatusOr<std::optional<AttemptRecord>> lease = store->LeaseNext(worker->id(), 1);
          if (!lease.ok()) {
            ++failures;
          } else if (lease->has_value()) {
            const absl::StatusOr<JobUpdate> done =
                store->Finish((*lease)->job.id(), End(1, "SUCCEEDED", absl::Now()),
                              v1::Job::SUCCEEDED, v1::Job::REASON_UNSPECIFIED, "/a");
            // Its owner may cancel it between the lease and the finish: then the finish is
            // refused, and the job keeps its cancel.
            if (done.ok()) {
              ++finished;
            } else if (!absl::IsFailedPrecondition(done.status())) {
              ++failures;
            }
          }
        }
      }
      // Cancel own jobs; one another thread finished meanwhile is refused, never lost.
      for (size_t i = 0; i < ids[t].size(); i += 4) {
        const absl::StatusOr<JobUpdate> cancel =
            store->Cancel(ids[t][i], v1::Job::USER, "", std::nullopt);
        if (cancel.ok()) {
          ++cancelled;
        } else if (!absl::IsFailedPrecondition(cancel.status())) {
          ++failures;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);

  std::map<v1::Job::State, int> by_state;
  std::set<std::string> unique_ids;
  for (const std::vector<std::string>& thread_ids : ids) {
    ASSERT_THAT(thread_ids, SizeIs(kJobsPerThread));
    for (const std::string& id : thread_ids) {
      unique_ids.insert(id);
      absl::StatusOr<v1::Job> job = store->GetJob(id);
      ASSERT_OK(job);
      ++by_state[job->state()];
      const std::vector<v1::JobEvent> events = *store->ListJobEvents(id);
      switch (job->state()) {
        case v1::Job::QUEUED:
          EXPECT_THAT(EventKinds(events), ElementsAre(v1::JobEvent::SUBMITTED)) << "job " << id;
          break;
        case v1::Job::SUCCEEDED:
          EXPECT_THAT(
              EventKinds(events),
              ElementsAre(v1::JobEvent::SUBMITTED, v1::JobEvent::STARTED, v1::JobEvent::SUCCEEDED))
              << "job " << id;
          break;
        case v1::Job::CANCELLED:
          // Cancelled while queued, or while another thread held its lease.
          EXPECT_THAT(
              EventKinds(events),
              ::testing::AnyOf(ElementsAre(v1::JobEvent::SUBMITTED, v1::JobEvent::CANCELLED),
                               ElementsAre(v1::JobEvent::SUBMITTED, v1::JobEvent::STARTED,
                                           v1::JobEvent::CANCELLED)))
              << "job " << id;
          break;
        default:
          ADD_FAILURE() << "job " << id << " is " << v1::Job::State_Name(job->state());
      }
    }
  }
  EXPECT_EQ(unique_ids.size(), static_cast<size_t>(kThreads * kJobsPerThread));
  EXPECT_EQ(by_state[v1::Job::SUCCEEDED], finished.load());
  EXPECT_EQ(by_state[v1::Job::CANCELLED], cancelled.load());
  absl::StatusOr<std::map<std::string, int64_t>> counts = store->CountJobsByState();
  ASSERT_OK(counts);
  int64_t total = 0;
  for (const auto& [state, count] : *counts) total += count;
  EXPECT_EQ(total, kThreads * kJobsPerThread);
}

TEST_F(JobStoreTest, EnqueueIsIdempotentOnTenantAndRequestId) {
  std::unique_ptr<JobStore> store = Open();
  absl::StatusOr<EnqueueResult> first = store->Enqueue("alice", Spec(0, 3, "req-1"));
  absl::StatusOr<EnqueueResult> again = store->Enqueue("alice", Spec(0, 3, "req-1"));
  absl::StatusOr<EnqueueResult> other_tenant = store->Enqueue("bob", Spec(0, 3, "req-1"));
  ASSERT_OK(first);
  ASSERT_OK(again);
  ASSERT_OK(other_tenant);
  EXPECT_FALSE(first->deduplicated);
  EXPECT_TRUE(again->deduplicated);
  EXPECT_EQ(again->update.job.id(), first->update.job.id());
  EXPECT_TRUE(again->update.events.empty());
  // The same key with another spec is an error naming the first job, and stores nothing.
  EXPECT_THAT(store->Enqueue("alice", Spec(9, 3, "req-1")),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       AllOf(HasSubstr("client_request_id: \"req-1\""),
                             HasSubstr(absl::StrCat("job ", first->update.job.id())))));
  EXPECT_NE(other_tenant->update.job.id(), first->update.job.id());
  EXPECT_THAT(*store->ListJobEvents(first->update.job.id()), SizeIs(1));
}

// The cap is counted in the transaction that inserts: threads racing one tenant's submits
// (group-committed together) cannot pass it.
TEST_F(JobStoreTest, ConcurrentEnqueuesNeverPassTheTenantsQueuedCap) {
  std::unique_ptr<JobStore> store = Open();
  constexpr int kCap = 25;
  constexpr int kThreads = 8;
  constexpr int kJobsPerThread = 10;
  std::atomic<int> admitted{0};
  std::atomic<int> refused{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kJobsPerThread; ++i) {
        const absl::StatusOr<EnqueueResult> job = store->Enqueue("alice", Spec(), kCap);
        if (job.ok()) {
          ++admitted;
        } else if (absl::IsResourceExhausted(job.status())) {
          ++refused;
        } else {
          ++failures;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(admitted.load(), kCap);
  EXPECT_EQ(refused.load(), kThreads * kJobsPerThread - kCap);
  absl::StatusOr<std::map<std::string, int64_t>> counts = store->CountJobsByState();
  ASSERT_OK(counts);
  EXPECT_EQ((*counts)["QUEUED"], kCap) << "refused submits store nothing";
  EXPECT_OK(store->Enqueue("bob", Spec(), kCap).status());
}

// The cap reads tenant_queued, which triggers keep (job_store_schema.cc, version 8); this
// compares it with a count of the jobs themselves after every kind of write to jobs.state.
TEST_F(JobStoreTest, TenantsQueuedCountFollowsEveryStateChange) {
  std::unique_ptr<JobStore> store = Open();
  ASSERT_NE(store, nullptr);
  absl::StatusOr<std::unique_ptr<SqliteDb>> db = SqliteDb::Open(dir_.File("jobs.db"));
  ASSERT_OK(db);
  // tenant -> QUEUED jobs, as the triggers keep it and as the jobs table has it.
  auto counts = [&](const char* sql) {
    std::map<std::string, int64_t> by_tenant;
    absl::StatusOr<SqliteDb::Statement*> statement = (*db)->Prepare(sql);
    EXPECT_OK(statement);
    if (!statement.ok()) return by_tenant;
    Query query(*statement);
    for (absl::StatusOr<bool> row = query.Step(); row.ok() && *row; row = query.Step()) {
      by_tenant[query.Text(0)] = query.Int(1);
    }
    return by_tenant;
  };
  auto expect_counts_agree = [&](const std::string& after) {
    EXPECT_EQ(counts("SELECT tenant, queued FROM tenant_queued WHERE queued != 0"),
              counts("SELECT tenant, COUNT(*) FROM jobs WHERE state = 1 GROUP BY tenant"))
        << "after " << after;
  };
  constexpr int kCap = 2;
  auto submit = [&](const std::string& tenant) {
    absl::StatusOr<EnqueueResult> result = store->Enqueue(tenant, Spec(), kCap);
    EXPECT_OK(result);
    return result.ok() ? result->update.job.id() : "not submitted";
  };
  const std::string a1 = submit("alice");
  const std::string a2 = submit("alice");
  const std::string b1 = submit("bob");
  expect_counts_agree("submits");
  EXPECT_THAT(store->Enqueue("alice", Spec(), kCap),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("has 2 QUEUED jobs")));
  expect_counts_agree("a refused submit");

  const std::string worker = Register(*store);
  ASSERT_OK(store->LeaseNext(worker, 1));  // alice's first job starts
  expect_counts_agree("a lease");
  const std::string a3 = submit("alice");
  ASSERT_OK(store->Requeue(a1, End(1, "PREEMPTED", clock_.Now())));
  expect_counts_agree("a requeue");
  EXPECT_THAT(store->Enqueue("alice", Spec(), kCap),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("has 3 QUEUED jobs")));

  ASSERT_OK(store->Cancel(a2, v1::Job::USER, "", std::nullopt));
  ASSERT_OK(store->Cancel(a3, v1::Job::USER, "", std::nullopt));
  expect_counts_agree("cancels of queued jobs");
  absl::StatusOr<std::optional<AttemptRecord>> second = store->LeaseNext(worker, 1);
  ASSERT_OK(second);
  ASSERT_TRUE(second->has_value());
  ASSERT_OK(store->Finish(a1, End(2, "SUCCEEDED", clock_.Now()), v1::Job::SUCCEEDED,
                          v1::Job::REASON_UNSPECIFIED, "/adapters/a1"));
  expect_counts_agree("a lease and a finish");
  ASSERT_OK((*db)->Exec("UPDATE jobs SET tenant = 'carol' WHERE tenant = 'bob'"));
  expect_counts_agree("a change of tenant");
  ASSERT_OK((*db)->Exec(absl::StrCat("DELETE FROM jobs WHERE id = ", b1).c_str()));
  expect_counts_agree("a delete");
  EXPECT_EQ(counts("SELECT tenant, queued FROM tenant_queued WHERE queued != 0"),
            (std::map<std::string, int64_t>{}))
      << "nothing left queued";
  submit("alice");
  submit("alice");
}

TEST_F(JobStoreTest, LeasesByPriorityThenSubmitOrderAndOnlyWhatFits) {
  std::unique_ptr<JobStore> store = Open();
  const std::string low = Enqueue(*store, Spec(-5));
  const std::string high_first = Enqueue(*store, Spec(10));
  v1::JobSpec big = Spec(100);
  big.set_gpus(4);
  const std::string needs_four = Enqueue(*store, big);
  const std::string high_second = Enqueue(*store, Spec(10));
  const std::string worker = Register(*store, /*gpus=*/4);

  std::vector<std::string> order;
  for (int i = 0; i < 4; ++i) {
    absl::StatusOr<std::optional<AttemptRecord>> lease = store->LeaseNext(worker, 1);
    ASSERT_OK(lease);
    if (!lease->has_value()) break;
    order.push_back((*lease)->job.id());
    EXPECT_EQ((*lease)->attempt.state(), "RUNNING");
    EXPECT_EQ((*lease)->attempt.attempt(), 1);
    EXPECT_DOUBLE_EQ((*lease)->attempt.price_per_gpu_hour(), 3.6);
    ASSERT_THAT((*lease)->events, SizeIs(1));
    EXPECT_EQ((*lease)->events[0].kind(), v1::JobEvent::STARTED);
  }
  EXPECT_THAT(order, ElementsAre(high_first, high_second, low)) << "4-GPU job skipped at 1 free";
  absl::StatusOr<std::optional<AttemptRecord>> big_lease = store->LeaseNext(worker, 4);
  ASSERT_OK(big_lease);
  ASSERT_TRUE(big_lease->has_value());
  EXPECT_EQ((*big_lease)->job.id(), needs_four);
  EXPECT_EQ((*big_lease)->attempt.gpus(), 4);
}

TEST_F(JobStoreTest, OnlyLostAttemptsUseUpMaxAttempts) {
  std::unique_ptr<JobStore> store = Open();
  const std::string job = Enqueue(*store, Spec(0, /*max_attempts=*/2));
  const std::string worker = Register(*store);

  ASSERT_OK(store->LeaseNext(worker, 1));
  AttemptEnd preempted = End(1, "PREEMPTED", clock_.Now(), 0.5);
  preempted.last_checkpoint = "/ckpt/step-20";
  absl::StatusOr<JobUpdate> requeued = store->Requeue(job, preempted);
  ASSERT_OK(requeued);
  EXPECT_EQ(requeued->job.state(), v1::Job::QUEUED);
  EXPECT_EQ(requeued->job.attempts(), 1);
  EXPECT_EQ(requeued->job.preempted_attempts(), 1);
  EXPECT_EQ(requeued->job.failed_attempts(), 0);
  EXPECT_EQ(requeued->job.last_checkpoint(), "/ckpt/step-20");
  ASSERT_THAT(requeued->events, SizeIs(1));
  EXPECT_EQ(requeued->events[0].kind(), v1::JobEvent::REQUEUED);

  absl::StatusOr<std::optional<AttemptRecord>> second = store->LeaseNext(worker, 1);
  ASSERT_OK(second);
  ASSERT_TRUE(second->has_value());
  EXPECT_EQ((*second)->attempt.attempt(), 2);
  EXPECT_EQ((*second)->job.last_checkpoint(), "/ckpt/step-20") << "resume point";
  absl::StatusOr<JobUpdate> lost = store->Requeue(job, End(2, "LOST", clock_.Now(), 0.75));
  ASSERT_OK(lost);
  EXPECT_EQ(lost->job.state(), v1::Job::QUEUED) << "one lost attempt of 2; the preemption is free";
  EXPECT_EQ(lost->job.failed_attempts(), 1);

  ASSERT_OK(store->LeaseNext(worker, 1));
  absl::StatusOr<JobUpdate> failed = store->Requeue(job, End(3, "LOST", clock_.Now(), 0.25));
  ASSERT_OK(failed);
  EXPECT_EQ(failed->job.state(), v1::Job::FAILED);
  EXPECT_EQ(failed->job.reason(), v1::Job::ATTEMPTS_EXHAUSTED);
  EXPECT_THAT(failed->job.message(), HasSubstr("2 attempts lost, the job's max_attempts is 2"));
  EXPECT_EQ(failed->job.attempts(), 3);
  EXPECT_EQ(failed->job.failed_attempts(), 2);
  EXPECT_EQ(failed->job.preempted_attempts(), 1);
  EXPECT_TRUE(failed->job.has_end_time());
  const std::vector<v1::AttemptCost> attempts = *store->ListAttempts(job);
  ASSERT_THAT(attempts, SizeIs(3));
  EXPECT_EQ(attempts[0].state(), "PREEMPTED");
  EXPECT_EQ(attempts[1].state(), "LOST");
  EXPECT_THAT(EventKinds(*store->ListJobEvents(job)),
              ElementsAre(v1::JobEvent::SUBMITTED, v1::JobEvent::STARTED, v1::JobEvent::REQUEUED,
                          v1::JobEvent::STARTED, v1::JobEvent::REQUEUED, v1::JobEvent::STARTED,
                          v1::JobEvent::FAILED));
}

TEST_F(JobStoreTest, PreemptionsHaveTheirOwnHigherCap) {
  std::unique_ptr<JobStore> store = Open();
  const std::string job = Enqueue(*store, Spec(0, /*max_attempts=*/1));
  const std::string worker = Register(*store);
  for (int attempt = 1; attempt <= kMaxPreemptedAttempts; ++attempt) {
    ASSERT_OK(store->LeaseNext(worker, 1));
    absl::StatusOr<JobUpdate> requeued =
        store->Requeue(job, End(attempt, "PREEMPTED", clock_.Now(), 0.1));
    ASSERT_OK(requeued);
    const bool last = attempt == kMaxPreemptedAttempts;
    ASSERT_EQ(requeued->job.state(), last ? v1::Job::FAILED : v1::Job::QUEUED) << attempt;
    if (last) {
      EXPECT_EQ(requeued->job.reason(), v1::Job::ATTEMPTS_EXHAUSTED);
      EXPECT_THAT(requeued->job.message(), HasSubstr("20 attempts preempted, the cap is 20"));
    }
  }
}

TEST_F(JobStoreTest, ListsInDispatchOrderWithPages) {
  std::unique_ptr<JobStore> store = Open();
  const std::string worker = Register(*store);
  const std::string finished_early = Enqueue(*store, Spec(50));
  const std::string running = Enqueue(*store, Spec(40));
  ASSERT_OK(store->LeaseNext(worker, 1));  // finished_early (priority 50)
  ASSERT_OK(store->Finish(finished_early, End(1, "SUCCEEDED", clock_.Now()), v1::Job::SUCCEEDED,
                          v1::Job::REASON_UNSPECIFIED, "/a"));
  ASSERT_OK(store->LeaseNext(worker, 1));  // running (priority 40)
  const std::string q_low = Enqueue(*store, Spec(1));
  const std::string q_high = Enqueue(*store, Spec(7));
  const std::string q_low_later = Enqueue(*store, Spec(1));
  clock_.Advance(absl::Seconds(1));
  const std::string cancelled_later = Enqueue(*store, Spec(0));
  ASSERT_OK(store->Cancel(cancelled_later, v1::Job::USER, "", std::nullopt));

  JobQuery query;
  query.page_size = 100;
  absl::StatusOr<JobPage> all = store->ListJobs(query);
  ASSERT_OK(all);
  std::vector<std::string> order;
  for (const v1::Job& job : all->jobs) order.push_back(job.id());
  EXPECT_THAT(order,
              ElementsAre(q_high, q_low, q_low_later, running, cancelled_later, finished_early));
  EXPECT_EQ(all->next_page_token, "");

  query.page_size = 4;
  absl::StatusOr<JobPage> first = store->ListJobs(query);
  ASSERT_OK(first);
  EXPECT_THAT(first->jobs, SizeIs(4));
  query.page_token = first->next_page_token;
  absl::StatusOr<JobPage> second = store->ListJobs(query);
  ASSERT_OK(second);
  ASSERT_THAT(second->jobs, SizeIs(2));
  EXPECT_EQ(second->jobs[0].id(), cancelled_later);
  EXPECT_EQ(second->next_page_token, "");

  JobQuery queued_only;
  queued_only.states = {v1::Job::QUEUED};
  EXPECT_THAT(store->ListJobs(queued_only)->jobs, SizeIs(3));
  JobQuery other_tenant;
  other_tenant.tenant = "nobody";
  EXPECT_THAT(store->ListJobs(other_tenant)->jobs, SizeIs(0));
  JobQuery bad_token;
  bad_token.page_token = "xyz";
  EXPECT_THAT(store->ListJobs(bad_token),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("page_token")));
}

// Issue 13: ListJobs reads its three segments (QUEUED, RUNNING, finished) along their own
// indexes; a page token's offset may land in any of them. Every page size pages through the
// same order as one big page, for all tenants and for one.
TEST_F(JobStoreTest, EveryPageSizePagesThroughTheSameDispatchOrder) {
  std::unique_ptr<JobStore> store = Open();
  const std::string worker = Register(*store, /*gpus=*/8);
  for (int i = 0; i < 4; ++i) {
    for (int priority : {3, 9}) Enqueue(*store, Spec(priority), i % 2 == 0 ? "a" : "b");
  }
  for (int i = 0; i < 5; ++i) {  // 5 RUNNING (priority 9 first), 2 of them finished later
    clock_.Advance(absl::Seconds(1));
    absl::StatusOr<std::optional<AttemptRecord>> lease = store->LeaseNext(worker, 1);
    ASSERT_OK(lease);
    ASSERT_TRUE(lease->has_value());
    if (i % 2 == 1) {
      ASSERT_OK(store->Finish((*lease)->job.id(), End(1, "SUCCEEDED", clock_.Now()),
                              v1::Job::SUCCEEDED, v1::Job::REASON_UNSPECIFIED, "/a"));
    }
  }
  for (const std::string tenant : {"", "a"}) {
    JobQuery query;
    query.tenant = tenant;
    query.page_size = 100;
    absl::StatusOr<JobPage> all = store->ListJobs(query);
    ASSERT_OK(all);
    std::vector<std::string> order;
    for (const v1::Job& job : all->jobs) order.push_back(job.id());
    ASSERT_THAT(order, SizeIs(tenant.empty() ? 8 : 4));
    for (int page_size = 1; page_size <= 9; ++page_size) {
      query.page_size = page_size;
      query.page_token = "";
      std::vector<std::string> paged;
      for (int pages = 0; pages < 20; ++pages) {
        absl::StatusOr<JobPage> page = store->ListJobs(query);
        ASSERT_OK(page);
        for (const v1::Job& job : page->jobs) paged.push_back(job.id());
        query.page_token = page->next_page_token;
        if (query.page_token.empty()) break;
      }
      EXPECT_EQ(paged, order) << "tenant \"" << tenant << "\", page_size " << page_size;
    }
  }
}

// Issue 10: two 2.5 MB jobs made every ListJobs fail at gRPC's 4 MiB message limit. A page ends
// at max_bytes of jobs as well as at page_size, and the tokens still walk every job once.
TEST_F(JobStoreTest, ListJobsPagesByBytesAsWellAsCount) {
  std::unique_ptr<JobStore> store = Open();
  std::vector<std::string> ids;
  for (int i = 0; i < 9; ++i) {
    v1::JobSpec spec = Spec();
    (*spec.mutable_labels())["note"] = std::string(i == 4 ? 50'000 : 10'000, 'x');
    ids.push_back(Enqueue(*store, spec));
  }
  JobQuery query;
  query.page_size = 100;
  query.max_bytes = 25'000;
  std::vector<std::string> listed;
  std::vector<int> page_sizes;
  do {
    absl::StatusOr<JobPage> page = store->ListJobs(query);
    ASSERT_OK(page);
    v1::ListJobsResponse response;
    for (const v1::Job& job : page->jobs) {
      listed.push_back(job.id());
      *response.add_jobs() = job;
    }
    page_sizes.push_back(page->jobs.size());
    if (page->jobs.size() > 1) {
      EXPECT_LE(response.ByteSizeLong(), 25'000u);
    }
    query.page_token = page->next_page_token;
  } while (!query.page_token.empty() && page_sizes.size() < 20);
  EXPECT_EQ(listed, ids) << "every job once, in order";
  // Two 10 KB jobs fit in 25,000 bytes; the 50 KB job comes alone, as no page can be empty.
  EXPECT_THAT(page_sizes, ElementsAre(2, 2, 1, 2, 2));

  query.page_token = "";
  query.max_bytes = kJobPageMaxBytes;
  query.page_size = 5;
  absl::StatusOr<JobPage> by_count = store->ListJobs(query);
  ASSERT_OK(by_count);
  EXPECT_THAT(by_count->jobs, SizeIs(5)) << "a page under max_bytes still ends at page_size";
  EXPECT_EQ(by_count->next_page_token, "5");
}

TEST_F(JobStoreTest, ProgressHistoryIsDownsampledToABoundedNumberOfPoints) {
  JobStoreOptions options;
  options.max_progress_points = 16;
  std::unique_ptr<JobStore> store = Open(options);
  const std::string job = Enqueue(*store, Spec());
  ASSERT_OK(store->LeaseNext(Register(*store), 1));
  constexpr int kReports = 300;
  for (int step = 1; step <= kReports; ++step) {
    AttemptProgress progress;
    progress.attempt = 1;
    progress.progress.emplace();
    progress.progress->set_step(step);
    ASSERT_OK(store->RecordProgress(job, progress));
  }
  absl::StatusOr<std::vector<v1::Progress>> history = store->ListProgressHistory(job);
  ASSERT_OK(history);
  EXPECT_LE(history->size(), 16u);
  EXPECT_GE(history->size(), 8u) << "thinning halves, never empties";
  EXPECT_EQ(history->front().step(), 1) << "the start stays";
  EXPECT_GE(history->back().step(), kReports - kReports / 8) << "the points span the run";
  for (size_t i = 1; i < history->size(); ++i) {
    EXPECT_LT((*history)[i - 1].step(), (*history)[i].step());
  }
  EXPECT_EQ(store->GetJob(job)->progress().step(), kReports) << "latest progress is exact";
}

// The progress log (server/core/progress_log.h) as the file holds it, read on a connection of
// its own: rows not folded into their job yet, and rows in all (folded ones wait for a trim).
struct LogRows {
  int64_t waiting = 0;
  int64_t all = 0;
};
LogRows ReadLogRows(const std::string& path) {
  LogRows rows;
  absl::StatusOr<std::unique_ptr<SqliteDb>> db = SqliteDb::Open(path);
  EXPECT_OK(db);
  if (!db.ok()) return rows;
  absl::StatusOr<int64_t> waiting = (*db)->QueryInt(
      "SELECT COUNT(*) FROM progress_log JOIN jobs ON jobs.id = progress_log.job_id "
      "WHERE progress_log.seq > jobs.log_seq");
  absl::StatusOr<int64_t> all = (*db)->QueryInt("SELECT COUNT(*) FROM progress_log");
  EXPECT_OK(waiting);
  EXPECT_OK(all);
  if (waiting.ok()) rows.waiting = *waiting;
  if (all.ok()) rows.all = *all;
  return rows;
}

// Report `step` of attempt 1: progress at that step and a bill of `step` cents.
AttemptProgress StepReport(int step) {
  AttemptProgress report;
  report.attempt = 1;
  report.progress.emplace();
  report.progress->set_step(step);
  report.progress->set_loss(10.0 / step);
  report.bill.seconds = step;
  report.bill.usd = step / 100.0;
  report.bill.job_cost.set_accrued_usd(step / 100.0);
  report.bill.job_cost.set_projected_usd(1.0);
  return report;
}

// A report is one row of the progress log, not a rewrite of its job: reads still answer it
// (GetJob, ListJobs, ListAttempts, the history), and a store reopened after a stop folds what
// the log held into the job's row.
TEST_F(JobStoreTest, ALoggedReportIsReadBeforeItsFoldAndFoldedWhenTheStoreReopens) {
  const std::string path = dir_.File("jobs.db");
  std::string job;
  {
    std::unique_ptr<JobStore> store = Open();
    job = Enqueue(*store, Spec());
    ASSERT_OK(store->LeaseNext(Register(*store), 1));
    for (int step = 1; step <= 10; ++step) ASSERT_OK(store->RecordProgress(job, StepReport(step)));
    EXPECT_EQ(ReadLogRows(path).waiting, 10) << "each report is a logged row";
    absl::StatusOr<v1::Job> read = store->GetJob(job);
    ASSERT_OK(read);
    EXPECT_EQ(read->progress().step(), 10);
    EXPECT_DOUBLE_EQ(read->cost().accrued_usd(), 0.10);
    JobQuery query;
    query.tenant = "t";
    absl::StatusOr<JobPage> page = store->ListJobs(query);
    ASSERT_OK(page);
    ASSERT_THAT(page->jobs, SizeIs(1));
    EXPECT_TRUE(MessageDifferencer::Equals(page->jobs[0], *read));
    absl::StatusOr<std::vector<v1::AttemptCost>> attempts = store->ListAttempts(job);
    ASSERT_OK(attempts);
    ASSERT_THAT(*attempts, SizeIs(1));
    EXPECT_DOUBLE_EQ((*attempts)[0].usd(), 0.10);
    EXPECT_DOUBLE_EQ((*attempts)[0].seconds(), 10);
    // The ticker's bill (cost only) is a logged row too; the progress stays the latest report's.
    AttemptProgress bill = StepReport(12);
    bill.progress.reset();
    absl::StatusOr<JobUpdate> billed = store->RecordProgress(job, bill);
    ASSERT_OK(billed);
    EXPECT_EQ(billed->job.progress().step(), 10);
    EXPECT_EQ(ReadLogRows(path).waiting, 11);
    read = store->GetJob(job);
    ASSERT_OK(read);
    EXPECT_TRUE(MessageDifferencer::Equals(billed->job, *read));
    EXPECT_DOUBLE_EQ(read->cost().accrued_usd(), 0.12);
    EXPECT_DOUBLE_EQ((*store->ListAttempts(job))[0].usd(), 0.12);
    // Stopped without a fold: the next open finds the eleven rows waiting.
  }
  EXPECT_EQ(ReadLogRows(path).waiting, 11);
  std::unique_ptr<JobStore> reopened = Open();
  const LogRows after_open = ReadLogRows(path);
  EXPECT_EQ(after_open.waiting, 0) << "folded on open";
  EXPECT_EQ(after_open.all, 0) << "and trimmed";
  absl::StatusOr<v1::Job> folded = reopened->GetJob(job);
  ASSERT_OK(folded);
  EXPECT_EQ(folded->progress().step(), 10);
  EXPECT_DOUBLE_EQ(folded->progress().loss(), 1.0);
  EXPECT_DOUBLE_EQ(folded->cost().accrued_usd(), 0.12);
  EXPECT_DOUBLE_EQ((*reopened->ListAttempts(job))[0].usd(), 0.12);
  absl::StatusOr<std::vector<v1::Progress>> history = reopened->ListProgressHistory(job);
  ASSERT_OK(history);
  ASSERT_THAT(*history, SizeIs(10)) << "a bill adds no point";
  for (int i = 0; i < 10; ++i) EXPECT_EQ((*history)[i].step(), i + 1);
}

// A report's contact with its worker is logged with the report, not written onto the worker's
// row: GetWorker and ListWorkers read it at once, a fold (here the next open's) writes it onto
// the row, and neither ever moves the worker's last contact back behind a later heartbeat. A
// restarted server bills each attempt up to that contact (scheduler_test's
// ATenSecondServerOutageIsNotBilled).
TEST_F(JobStoreTest, AReportsWorkerContactIsReadAtOnceFoldedOnOpenAndNeverMovedBack) {
  const std::string path = dir_.File("jobs.db");
  std::string job;
  std::string worker;
  auto last_contact = [&](JobStore& store) {
    absl::StatusOr<v1::Worker> got = store.GetWorker(worker);
    EXPECT_OK(got);
    absl::StatusOr<std::vector<v1::Worker>> listed = store.ListWorkers();
    EXPECT_OK(listed);
    if (!got.ok() || !listed.ok()) return absl::InfinitePast();
    EXPECT_THAT(*listed, SizeIs(1));
    if (listed->size() == 1) {
      EXPECT_EQ(FromTimestamp((*listed)[0].last_heartbeat_time()),
                FromTimestamp(got->last_heartbeat_time()))
          << "ListWorkers reads what GetWorker reads";
    }
    return FromTimestamp(got->last_heartbeat_time());
  };
  const absl::Time start = clock_.Now();
  {
    std::unique_ptr<JobStore> store = Open();
    job = Enqueue(*store, Spec());
    worker = Register(*store);
    ASSERT_OK(store->LeaseNext(worker, 1));
    AttemptProgress report = StepReport(1);
    report.worker_contact = start + absl::Seconds(5);
    ASSERT_OK(store->RecordProgress(job, report));
    EXPECT_EQ(ReadLogRows(path).waiting, 1);
    EXPECT_EQ(last_contact(*store), start + absl::Seconds(5)) << "read before any fold";
    // A heartbeat at +7 s, then a report whose contact was taken before it (+6 s).
    clock_.Advance(absl::Seconds(7));
    ASSERT_OK(store->TouchWorker(worker));
    report = StepReport(2);
    report.worker_contact = start + absl::Seconds(6);
    ASSERT_OK(store->RecordProgress(job, report));
    EXPECT_EQ(last_contact(*store), start + absl::Seconds(7));
  }
  {
    std::unique_ptr<JobStore> reopened = Open();
    EXPECT_EQ(ReadLogRows(path).waiting, 0) << "folded on open";
    EXPECT_EQ(last_contact(*reopened), start + absl::Seconds(7))
        << "the fold keeps the later heartbeat";
    AttemptProgress report = StepReport(3);
    report.worker_contact = start + absl::Seconds(9);
    ASSERT_OK(reopened->RecordProgress(job, report));
    // A server's own bill carries no contact.
    AttemptProgress bill = StepReport(4);
    bill.progress.reset();
    ASSERT_OK(reopened->RecordProgress(job, bill));
    EXPECT_EQ(last_contact(*reopened), start + absl::Seconds(9));
  }
  std::unique_ptr<JobStore> reopened = Open();
  EXPECT_EQ(last_contact(*reopened), start + absl::Seconds(9))
      << "the logged contact is on the worker's row after a stop";
  EXPECT_EQ(reopened->GetJob(job)->progress().step(), 3);
}

// Version 10 gives the log's rows a worker contact; the rows a version-9 server left waiting
// (none has one) are folded on the first open after the migration.
TEST_F(JobStoreTest, MigrationFoldsTheRowsAVersionNineLogHolds) {
  const absl::Time registered = clock_.Now();
  std::string job;
  std::string worker;
  {
    JobStoreOptions older;
    older.schema_version = 9;
    std::unique_ptr<JobStore> store = Open(older);
    ASSERT_NE(store, nullptr);
    ASSERT_EQ(*store->SchemaVersion(), 9);
    job = Enqueue(*store, Spec());
    worker = Register(*store);
    ASSERT_OK(store->LeaseNext(worker, 1));
  }
  {
    absl::StatusOr<std::unique_ptr<SqliteDb>> db = SqliteDb::Open(dir_.File("jobs.db"));
    ASSERT_OK(db);
    v1::Progress progress;
    progress.set_step(4);
    const std::string insert = absl::StrCat(
        "INSERT INTO progress_log (job_id, attempt, seconds, attempt_gpu_hours, usd, accrued_usd, "
        "gpu_hours, projected_usd, rate_usd_per_hour, progress) VALUES (",
        job, ", 1, 4, 0.001, 0.04, 0.04, 0.001, 1, 3.6, X'",
        absl::BytesToHexString(progress.SerializeAsString()), "')");
    ASSERT_OK((*db)->Exec(insert.c_str()));
  }
  clock_.Advance(absl::Seconds(30));
  std::unique_ptr<JobStore> store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(*store->SchemaVersion(), kJobStoreSchemaVersion);
  EXPECT_EQ(ReadLogRows(dir_.File("jobs.db")).waiting, 0);
  absl::StatusOr<v1::Job> folded = store->GetJob(job);
  ASSERT_OK(folded);
  EXPECT_EQ(folded->progress().step(), 4);
  EXPECT_DOUBLE_EQ(folded->cost().accrued_usd(), 0.04);
  EXPECT_EQ(FromTimestamp(store->GetWorker(worker)->last_heartbeat_time()), registered)
      << "a row without a contact leaves the worker's";
}

// An eval writes the job's row (after folding its reports); a bill logged after it must not
// bring back the progress from before the eval, which the readers' latest report still holds.
TEST_F(JobStoreTest, ABillLoggedAfterAnEvalKeepsTheEvaluatedProgress) {
  std::unique_ptr<JobStore> store = Open();
  const std::string job = Enqueue(*store, Spec());
  ASSERT_OK(store->LeaseNext(Register(*store), 1));
  ASSERT_OK(store->RecordProgress(job, StepReport(5)));
  ASSERT_OK(store->RecordEval(job, 1, 5, 0.75));
  AttemptProgress bill = StepReport(6);
  bill.progress.reset();
  absl::StatusOr<JobUpdate> billed = store->RecordProgress(job, bill);
  ASSERT_OK(billed);
  absl::StatusOr<v1::Job> read = store->GetJob(job);
  ASSERT_OK(read);
  EXPECT_EQ(read->progress().step(), 5);
  EXPECT_DOUBLE_EQ(read->progress().eval_loss(), 0.75);
  EXPECT_DOUBLE_EQ(read->cost().accrued_usd(), 0.06);
  EXPECT_TRUE(MessageDifferencer::Equals(billed->job, *read));
}

// A verb folds the job's logged reports before it runs; when it then fails, the fold is rolled
// back with it and the reports wait for the next one, none lost and none folded twice.
TEST_F(JobStoreTest, AVerbThatFailsAfterFoldingLeavesTheReportsWaitingForTheNextFold) {
  const std::string path = dir_.File("jobs.db");
  std::unique_ptr<JobStore> store = Open();
  const std::string job = Enqueue(*store, Spec());
  ASSERT_OK(store->LeaseNext(Register(*store), 1));
  for (int step = 1; step <= 5; ++step) ASSERT_OK(store->RecordProgress(job, StepReport(step)));
  EXPECT_THAT(store->RecordEval(job, /*attempt=*/2, 5, 0.5),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(ReadLogRows(path).waiting, 5) << "the failed verb's fold was rolled back";
  EXPECT_EQ(store->GetJob(job)->progress().step(), 5);
  ASSERT_OK(store->RecordCheckpoint(job, 1, 5, "/ckpt/step-5"));
  EXPECT_EQ(ReadLogRows(path).waiting, 0) << "the next verb folded them";
  absl::StatusOr<v1::Job> after = store->GetJob(job);
  ASSERT_OK(after);
  EXPECT_EQ(after->progress().step(), 5);
  EXPECT_DOUBLE_EQ(after->cost().accrued_usd(), 0.05);
  absl::StatusOr<std::vector<v1::Progress>> history = store->ListProgressHistory(job);
  ASSERT_OK(history);
  ASSERT_THAT(*history, SizeIs(5));
  for (int i = 0; i < 5; ++i) EXPECT_EQ((*history)[i].step(), i + 1);
}

// With no other write to fold them (no ticker), a job's reports fold every
// ProgressLog::kFoldAfter of them, and the folded rows are trimmed: the log stays bounded.
TEST_F(JobStoreTest, ReportsFoldThemselvesWithoutOtherWritesAndTheLogStaysBounded) {
  const std::string path = dir_.File("jobs.db");
  std::unique_ptr<JobStore> store = Open();
  const std::string job = Enqueue(*store, Spec());
  ASSERT_OK(store->LeaseNext(Register(*store), 1));
  constexpr int kReports = 1100;
  for (int step = 1; step <= kReports; ++step) {
    ASSERT_OK(store->RecordProgress(job, StepReport(step)));
  }
  const LogRows rows = ReadLogRows(path);
  EXPECT_LT(rows.waiting, static_cast<int64_t>(ProgressLog::kFoldAfter));
  EXPECT_LT(rows.all, 200) << "the rows folded before the 1024th were trimmed";
  EXPECT_EQ(store->GetJob(job)->progress().step(), kReports);
}

// RecordProgress answers the job without loading it again: what it returns must be exactly
// what GetJob reads back, for a report with progress (the latest eval loss kept) and for a
// cost-only one (progress and history untouched); the worker's contact is its heartbeat time.
TEST_F(JobStoreTest, EnqueueAnswersTheJobExactlyAsStored) {
  std::unique_ptr<JobStore> store = Open();
  v1::JobSpec with_budget = Spec(/*priority=*/3, /*max_attempts=*/2, "retry-key");
  with_budget.mutable_budget()->set_usd(50);
  with_budget.mutable_budget()->add_thresholds(0.5);
  for (const v1::JobSpec& spec : {Spec(), with_budget}) {
    clock_.Advance(absl::Nanoseconds(1'234'567));  // the column keeps microseconds
    absl::StatusOr<EnqueueResult> submitted = store->Enqueue("tenant-a", spec);
    ASSERT_OK(submitted);
    absl::StatusOr<v1::Job> stored = store->GetJob(submitted->update.job.id());
    ASSERT_OK(stored);
    EXPECT_TRUE(MessageDifferencer::Equals(submitted->update.job, *stored))
        << "returned:\n"
        << submitted->update.job.DebugString() << "stored:\n"
        << stored->DebugString();
    EXPECT_FALSE(stored->has_start_time() || stored->has_end_time()) << "not started, not ended";
    ASSERT_THAT(submitted->update.events, SizeIs(1));
    absl::StatusOr<std::vector<v1::JobEvent>> events = store->ListJobEvents(stored->id());
    ASSERT_OK(events);
    ASSERT_THAT(*events, SizeIs(1));
    EXPECT_TRUE(MessageDifferencer::Equals(submitted->update.events[0], (*events)[0]));
  }
}

TEST_F(JobStoreTest, RecordProgressAnswersTheJobExactlyAsStored) {
  std::unique_ptr<JobStore> store = Open();
  v1::JobSpec spec = Spec();
  spec.mutable_budget()->set_usd(50);
  const std::string job = Enqueue(*store, spec);
  const std::string worker = Register(*store);
  ASSERT_OK(store->LeaseNext(worker, 1));
  ASSERT_OK(store->RecordEval(job, 1, 5, 1.25));
  auto expect_as_stored = [&](const absl::StatusOr<JobUpdate>& recorded) {
    ASSERT_OK(recorded);
    absl::StatusOr<v1::Job> stored = store->GetJob(job);
    ASSERT_OK(stored);
    EXPECT_TRUE(MessageDifferencer::Equals(recorded->job, *stored))
        << "returned:\n"
        << recorded->job.DebugString() << "stored:\n"
        << stored->DebugString();
  };

  clock_.Advance(absl::Seconds(7));
  AttemptProgress report;
  report.attempt = 1;
  report.progress.emplace();
  report.progress->set_step(10);
  report.progress->set_loss(2.5);
  report.bill.seconds = 7;
  report.bill.usd = 0.007;
  report.bill.job_cost.set_accrued_usd(0.007);
  report.bill.job_cost.set_gpu_hours(7.0 / 3600);
  report.bill.job_cost.set_projected_usd(0.07);
  report.bill.job_cost.set_rate_usd_per_hour(3.6);
  report.worker_contact = clock_.Now();
  absl::StatusOr<JobUpdate> with_progress = store->RecordProgress(job, report);
  expect_as_stored(with_progress);
  EXPECT_EQ(with_progress->job.progress().step(), 10);
  EXPECT_DOUBLE_EQ(with_progress->job.progress().eval_loss(), 1.25) << "the eval loss stays";
  EXPECT_DOUBLE_EQ(with_progress->job.cost().accrued_usd(), 0.007);
  EXPECT_DOUBLE_EQ(with_progress->job.cost().budget_usd(), 50);
  EXPECT_EQ(FromTimestamp(store->GetWorker(worker)->last_heartbeat_time()), clock_.Now());

  clock_.Advance(absl::Seconds(3));
  AttemptProgress cost_only;
  cost_only.attempt = 1;
  cost_only.bill.seconds = 10;
  cost_only.bill.usd = 0.01;
  cost_only.bill.job_cost.set_accrued_usd(0.01);
  cost_only.bill.job_cost.set_projected_usd(0.08);
  absl::StatusOr<JobUpdate> without_progress = store->RecordProgress(job, cost_only);
  expect_as_stored(without_progress);
  EXPECT_EQ(without_progress->job.progress().step(), 10) << "progress untouched";
  EXPECT_DOUBLE_EQ(without_progress->job.cost().accrued_usd(), 0.01);
  EXPECT_THAT(*store->ListProgressHistory(job), SizeIs(1)) << "a cost-only bill adds no point";
  EXPECT_EQ(FromTimestamp(store->GetWorker(worker)->last_heartbeat_time()),
            clock_.Now() - absl::Seconds(3))
      << "a bill on the server's clock is no contact";

  EXPECT_THAT(store->RecordProgress(job,
                                    [] {
                                      AttemptProgress stale;
                                      stale.attempt = 2;
                                      return stale;
                                    }()),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(JobStoreTest, MigratesAnOlderSchemaAndKeepsItsData) {
  const std::string job = "1";
  CreateAtVersion(1);
  InsertVersionOneJob("t", v1::Job::QUEUED);
  std::unique_ptr<JobStore> store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(*store->SchemaVersion(), kJobStoreSchemaVersion);
  EXPECT_EQ(store->GetJob(job)->state(), v1::Job::QUEUED);
  ASSERT_OK(store->LeaseNext(Register(*store), 1));
  AttemptProgress progress;
  progress.attempt = 1;
  progress.progress.emplace();
  progress.progress->set_step(1);
  ASSERT_OK(store->RecordProgress(job, progress));
  EXPECT_THAT(*store->ListProgressHistory(job), SizeIs(1)) << "the version-2 table works";
  // The version-4 columns: a checkpoint time and the waste of an attempt a lost worker ended.
  clock_.Advance(absl::Seconds(2));
  ASSERT_OK(store->RecordCheckpoint(job, 1, 1, "/ckpt/step-1"));
  clock_.Advance(absl::Seconds(3));
  AttemptEnd lost;
  lost.attempt = 1;
  lost.outcome = "LOST";
  lost.end_time = clock_.Now();
  absl::StatusOr<JobUpdate> requeued = store->Requeue(job, lost);
  ASSERT_OK(requeued);
  absl::StatusOr<std::vector<v1::AttemptCost>> attempts = store->ListAttempts(job);
  ASSERT_OK(attempts);
  ASSERT_THAT(*attempts, SizeIs(1));
  EXPECT_DOUBLE_EQ((*attempts)[0].wasted_seconds(), 3);
  // The version-5 columns: a job from before them has no recorded estimate or base model, and
  // a new attempt's scoring time runs from its first scoring report to its last.
  absl::StatusOr<JobSubmitFacts> facts = store->GetSubmitFacts(job);
  ASSERT_OK(facts);
  EXPECT_EQ(facts->estimate.classes_size(), 0);
  EXPECT_EQ(facts->base_model.license(), "");
  ASSERT_OK(store->LeaseNext(Register(*store), 1));
  AttemptProgress scoring;
  scoring.attempt = 2;
  scoring.scoring_report = clock_.Now();
  ASSERT_OK(store->RecordProgress(job, scoring));
  clock_.Advance(absl::Seconds(4));
  scoring.scoring_report = clock_.Now();
  ASSERT_OK(store->RecordProgress(job, scoring));
  attempts = store->ListAttempts(job);
  ASSERT_OK(attempts);
  ASSERT_THAT(*attempts, SizeIs(2));
  EXPECT_DOUBLE_EQ((*attempts)[1].scoring_seconds(), 4);
}

// Version 8 counts the QUEUED jobs a version-7 file already holds, per tenant.
TEST_F(JobStoreTest, MigrationCountsEachTenantsQueuedJobs) {
  CreateAtVersion(7);
  InsertVersionOneJob("alice", v1::Job::QUEUED);
  InsertVersionOneJob("alice", v1::Job::QUEUED);
  InsertVersionOneJob("alice", v1::Job::SUCCEEDED);
  InsertVersionOneJob("bob", v1::Job::QUEUED);
  std::unique_ptr<JobStore> store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(store->Enqueue("alice", Spec(), 2),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("has 2 QUEUED jobs")));
  EXPECT_OK(store->Enqueue("bob", Spec(), 2).status());
  EXPECT_THAT(store->Enqueue("bob", Spec(), 2),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("has 2 QUEUED jobs")));
}

TEST_F(JobStoreTest, SubmitFactsAreStoredWithTheJob) {
  std::unique_ptr<JobStore> store = Open();
  ASSERT_NE(store, nullptr);
  JobSubmitFacts facts;
  facts.base_model.set_license("apache-2.0");
  facts.estimate.set_tokens_to_train(1234);
  facts.estimate.add_classes()->set_usd(0.5);
  absl::StatusOr<EnqueueResult> result = store->Enqueue("t", Spec(), std::nullopt, facts);
  ASSERT_OK(result);
  absl::StatusOr<JobSubmitFacts> stored = store->GetSubmitFacts(result->update.job.id());
  ASSERT_OK(stored);
  EXPECT_EQ(stored->base_model.license(), "apache-2.0");
  EXPECT_EQ(stored->estimate.tokens_to_train(), 1234);
  EXPECT_DOUBLE_EQ(stored->estimate.classes(0).usd(), 0.5);
  EXPECT_EQ(store->GetSubmitFacts("999").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(JobStoreTest, RefusesADatabaseFromANewerServer) {
  { ASSERT_NE(Open(), nullptr); }
  {
    absl::StatusOr<std::unique_ptr<SqliteDb>> db = SqliteDb::Open(dir_.File("jobs.db"));
    ASSERT_OK(db);
    ASSERT_OK((*db)->Exec("PRAGMA user_version = 99"));
  }
  EXPECT_THAT(JobStore::Open(dir_.File("jobs.db"), clock_),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("schema version 99")));
}

// A damaged blob is DATA_LOSS naming the row, never an empty spec served or leased to a worker.
TEST_F(JobStoreTest, DamagedStoredSpecIsDataLossAndIsNotLeased) {
  std::string job;
  std::string worker;
  {
    std::unique_ptr<JobStore> store = Open();
    ASSERT_NE(store, nullptr);
    job = Enqueue(*store, Spec());
    worker = Register(*store);
  }
  // 0xFF is no valid protobuf tag: the bytes cannot parse as a JobSpec or a WorkerInfo.
  auto damage = [&](const char* sql) {
    absl::StatusOr<std::unique_ptr<SqliteDb>> db = SqliteDb::Open(dir_.File("jobs.db"));
    ASSERT_OK(db);
    ASSERT_OK((*db)->Exec(sql));
  };
  damage("UPDATE jobs SET spec = X'FFFFFFFF'");
  {
    std::unique_ptr<JobStore> store = Open();
    ASSERT_NE(store, nullptr);
    EXPECT_THAT(store->GetJob(job),
                StatusIs(absl::StatusCode::kDataLoss,
                         HasSubstr("job " + job + ": stored tuneledger.v1.JobSpec is damaged")));
    EXPECT_THAT(store->ListJobs(JobQuery{}), StatusIs(absl::StatusCode::kDataLoss));
    EXPECT_THAT(store->LeaseNext(worker, 1), StatusIs(absl::StatusCode::kDataLoss));
    absl::StatusOr<std::vector<AttemptRecord>> running = store->ListRunningAttempts();
    ASSERT_OK(running);
    EXPECT_TRUE(running->empty()) << "nothing was leased";
  }
  damage("UPDATE workers SET info = X'FFFFFFFF'");
  std::unique_ptr<JobStore> store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(store->GetWorker(worker),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("worker " + worker)));
}

// The pre-flight estimator's history: the newest SUCCEEDED jobs that carry an estimate, each
// with its final tokens and every attempt's accelerator and billed seconds.
TEST_F(JobStoreTest, ListSucceededRunsGivesTheNewestEstimatedSuccessesWithTheirAttempts) {
  std::unique_ptr<JobStore> store = Open();
  ASSERT_NE(store, nullptr);
  v1::WorkerInfo gpu_info = CpuWorker(2.0);
  gpu_info.set_accelerator("NVIDIA A100-SXM4-80GB");
  absl::StatusOr<v1::Worker> gpu = store->RegisterWorker(gpu_info);
  ASSERT_OK(gpu);
  const std::string cpu = Register(*store);

  // Enqueues a job (with an estimate of `shape` unless empty), runs `seconds` of attempts on
  // `workers` (all but the last preempted) and ends it in `state` with `tokens` trained.
  auto run = [&](const std::string& shape, const std::vector<std::string>& workers,
                 const std::vector<double>& seconds, int64_t tokens, v1::Job::State state) {
    JobSubmitFacts facts;
    if (!shape.empty()) {
      facts.estimate.set_model_shape(shape);
      facts.estimate.set_scoring_tokens(7);
    }
    absl::StatusOr<EnqueueResult> enqueued = store->Enqueue("t", Spec(), std::nullopt, facts);
    EXPECT_OK(enqueued);
    if (!enqueued.ok()) return std::string();
    const std::string id = enqueued->update.job.id();
    for (size_t i = 0; i < workers.size(); ++i) {
      const int attempt = static_cast<int>(i) + 1;
      EXPECT_OK(store->LeaseNext(workers[i], 1));
      clock_.Advance(absl::Seconds(seconds[i]));
      AttemptProgress progress;
      progress.attempt = attempt;
      progress.progress.emplace();
      progress.progress->set_tokens(tokens);
      EXPECT_OK(store->RecordProgress(id, progress));
      AttemptEnd end =
          End(attempt, i + 1 < workers.size() ? "PREEMPTED" : "SUCCEEDED", clock_.Now());
      end.bill.seconds = seconds[i];
      if (i + 1 < workers.size()) {
        EXPECT_OK(store->Requeue(id, end));
      } else {
        end.outcome = state == v1::Job::SUCCEEDED ? "SUCCEEDED" : "FAILED";
        EXPECT_OK(store->Finish(id, end, state, v1::Job::REASON_UNSPECIFIED, "/adapter"));
      }
    }
    return id;
  };
  const std::string oldest = run("shape-a", {cpu}, {60}, 1000, v1::Job::SUCCEEDED);
  run("", {cpu}, {10}, 50, v1::Job::SUCCEEDED);      // submitted before estimates existed
  run("shape-a", {cpu}, {10}, 50, v1::Job::FAILED);  // not a success
  const std::string mixed = run("shape-b", {cpu, gpu->id()}, {20, 30}, 500, v1::Job::SUCCEEDED);

  absl::StatusOr<std::vector<SucceededRun>> runs = store->ListSucceededRuns(10);
  ASSERT_OK(runs);
  ASSERT_THAT(*runs, SizeIs(2));
  const SucceededRun& newest = (*runs)[0];
  EXPECT_EQ(newest.job_id, mixed);
  EXPECT_EQ(newest.model_shape, "shape-b");
  EXPECT_EQ(newest.scoring_tokens, 7);
  EXPECT_EQ(newest.tokens, 500);
  ASSERT_THAT(newest.attempts, SizeIs(2));
  EXPECT_EQ(newest.attempts[0].accelerator, "cpu");
  EXPECT_DOUBLE_EQ(newest.attempts[0].seconds, 20);
  EXPECT_EQ(newest.attempts[1].accelerator, "NVIDIA A100-SXM4-80GB");
  EXPECT_DOUBLE_EQ(newest.attempts[1].seconds, 30);
  EXPECT_EQ((*runs)[1].job_id, oldest);
  EXPECT_EQ((*runs)[1].tokens, 1000);
  ASSERT_THAT((*runs)[1].attempts, SizeIs(1));
  EXPECT_DOUBLE_EQ((*runs)[1].attempts[0].seconds, 60);

  absl::StatusOr<std::vector<SucceededRun>> one = store->ListSucceededRuns(1);
  ASSERT_OK(one);
  ASSERT_THAT(*one, SizeIs(1));
  EXPECT_EQ((*one)[0].job_id, mixed);
  EXPECT_THAT((*one)[0].attempts, SizeIs(2)) << "the limit counts jobs, not attempts";
}

}  // namespace
}  // namespace tuneledger
