// GroupCommit (server/core/group_commit.h), the writer's row cache on top of it
// (server/core/writer_row_cache.h), and the JobStore's queued verbs: writes share a
// transaction, commit in queue order, fail alone, and every acknowledged write survives a
// SIGKILL of the process that made it.
#include "server/core/group_commit.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/job_spec_validator.h"
#include "server/core/job_store.h"
#include "server/core/sqlite_db.h"
#include "server/core/writer_row_cache.h"
#include "tests/server/job_fixtures.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace tuneledger {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::tuneledger::testing::StatusIs;
using ::tuneledger::testing::TempDir;

// A WAL database with one table of numbers, as JobStore opens its writer.
std::unique_ptr<SqliteDb> OpenNumbers(const std::string& path) {
  absl::StatusOr<std::unique_ptr<SqliteDb>> db = SqliteDb::Open(path);
  EXPECT_OK(db);
  if (!db.ok()) return nullptr;
  EXPECT_OK((*db)->Exec("PRAGMA journal_mode = WAL"));
  EXPECT_OK((*db)->Exec("PRAGMA synchronous = FULL"));
  EXPECT_OK((*db)->Exec("CREATE TABLE IF NOT EXISTS numbers (seq INTEGER PRIMARY KEY, n INTEGER)"));
  return *std::move(db);
}

GroupCommit::Body Insert(int n) {
  return [n](SqliteDb& db) -> absl::Status {
    absl::StatusOr<SqliteDb::Statement*> insert = db.Prepare("INSERT INTO numbers (n) VALUES (?1)");
    if (!insert.ok()) return insert.status();
    Query query(*insert);
    query.Bind(1, n);
    return query.Run();
  };
}

// The numbers stored, in insertion order, read through a new connection.
std::vector<int> StoredNumbers(const std::string& path) {
  absl::StatusOr<std::unique_ptr<SqliteDb>> db = SqliteDb::Open(path);
  EXPECT_OK(db);
  std::vector<int> numbers;
  if (!db.ok()) return numbers;
  absl::StatusOr<SqliteDb::Statement*> select =
      (*db)->Prepare("SELECT n FROM numbers ORDER BY seq");
  EXPECT_OK(select);
  if (!select.ok()) return numbers;
  Query query(*select);
  while (true) {
    absl::StatusOr<bool> row = query.Step();
    EXPECT_OK(row);
    if (!row.ok() || !*row) return numbers;
    numbers.push_back(static_cast<int>(query.Int(0)));
  }
}

TEST(GroupCommitTest, WritesQueuedTogetherShareOneCommitInQueueOrder) {
  TempDir dir;
  std::unique_ptr<SqliteDb> db = OpenNumbers(dir.File("n.db"));
  ASSERT_NE(db, nullptr);
  GroupCommit commit(*db, /*max_batch=*/64);
  std::vector<std::shared_ptr<GroupCommit::Ticket>> tickets;
  for (int n = 0; n < 40; ++n) tickets.push_back(commit.Enqueue(Insert(n)));
  // Waited from many threads in reverse order: the first waiter leads and commits all 40.
  std::vector<std::thread> waiters;
  std::vector<absl::Status> statuses(tickets.size());
  for (int i = static_cast<int>(tickets.size()) - 1; i >= 0; --i) {
    waiters.emplace_back([&, i] { statuses[i] = commit.Wait(*tickets[i]); });
  }
  for (std::thread& waiter : waiters) waiter.join();
  for (const absl::Status& status : statuses) EXPECT_OK(status);
  EXPECT_EQ(commit.batches_committed(), 1);
  std::vector<int> expected;
  for (int n = 0; n < 40; ++n) expected.push_back(n);
  EXPECT_EQ(StoredNumbers(dir.File("n.db")), expected);
}

TEST(GroupCommitTest, ABatchNeverExceedsMaxBatch) {
  TempDir dir;
  std::unique_ptr<SqliteDb> db = OpenNumbers(dir.File("n.db"));
  ASSERT_NE(db, nullptr);
  GroupCommit commit(*db, /*max_batch=*/4);
  std::vector<std::shared_ptr<GroupCommit::Ticket>> tickets;
  for (int n = 0; n < 10; ++n) tickets.push_back(commit.Enqueue(Insert(n)));
  EXPECT_OK(commit.Wait(*tickets.back()));  // leads 4 + 4 + 2
  EXPECT_EQ(commit.batches_committed(), 3);
  for (auto& ticket : tickets) EXPECT_OK(commit.Wait(*ticket));
  EXPECT_EQ(StoredNumbers(dir.File("n.db")).size(), 10u);
}

// AwaitDone waits as Wait does (leading the batch when no one else does) without taking the
// status: a write is durable once it returns, and Wait then answers its status at once.
TEST(GroupCommitTest, AwaitDoneReturnsOnceTheWriteIsDurableAndLeavesItsStatusToWait) {
  TempDir dir;
  std::unique_ptr<SqliteDb> db = OpenNumbers(dir.File("n.db"));
  ASSERT_NE(db, nullptr);
  GroupCommit commit(*db, /*max_batch=*/256);
  std::shared_ptr<GroupCommit::Ticket> stored = commit.Enqueue(Insert(7));
  std::shared_ptr<GroupCommit::Ticket> refused =
      commit.Enqueue([](SqliteDb&) { return absl::FailedPreconditionError("job 2 is SUCCEEDED"); });
  commit.AwaitDone(*refused);
  EXPECT_THAT(StoredNumbers(dir.File("n.db")), ElementsAre(7))
      << "the writes queued before it are durable too";
  EXPECT_EQ(commit.batches_committed(), 1);
  EXPECT_THAT(commit.Wait(*refused),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("SUCCEEDED")));
  EXPECT_OK(commit.Wait(*stored));
  EXPECT_EQ(commit.batches_committed(), 1) << "Wait led no batch of its own";
}

// A batch that leaves writes queued that callers wait for passes the lead on (to the committer
// thread, or without one to the first caller still waiting), even when the head of the queue is
// a write whose caller has not called Wait() yet.
void ExpectABatchThatLeavesWaitedWritesQueuedPassesTheLeadOn(bool committer_thread) {
  TempDir dir;
  std::unique_ptr<SqliteDb> db = OpenNumbers(dir.File("n.db"));
  ASSERT_NE(db, nullptr);
  GroupCommit commit(*db, /*max_batch=*/1, committer_thread);
  absl::Notification leading, release;
  std::shared_ptr<GroupCommit::Ticket> first = commit.Enqueue([&](SqliteDb& db) {
    leading.Notify();
    release.WaitForNotification();
    return Insert(0)(db);
  });
  constexpr int kWaiters = 4;
  absl::Mutex mu;
  int finished = 0;
  std::vector<absl::Status> statuses(kWaiters + 1);
  std::vector<std::thread> threads;
  auto wait_for = [&](int i, std::shared_ptr<GroupCommit::Ticket> ticket) {
    statuses[i] = commit.Wait(*ticket);
    absl::MutexLock lock(&mu);
    ++finished;
  };
  threads.emplace_back(wait_for, 0, first);  // leads the first batch and blocks in it
  leading.WaitForNotification();
  std::shared_ptr<GroupCommit::Ticket> unwaited = commit.Enqueue(Insert(1));
  for (int i = 1; i <= kWaiters; ++i) {
    threads.emplace_back(wait_for, i, commit.Enqueue(Insert(i + 1)));
  }
  absl::SleepFor(absl::Milliseconds(100));  // the waiters are asleep behind the first batch
  release.Notify();
  const auto all_finished = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return finished == kWaiters + 1;
  };
  bool stuck = false;
  {
    absl::MutexLock lock(&mu);
    stuck = !mu.AwaitWithTimeout(absl::Condition(&all_finished), absl::Seconds(30));
  }
  if (stuck) {
    ADD_FAILURE() << "no waiter led the batches after the first: the waiters sleep forever";
    // Lead from here until every waiter's write has committed, so that the threads end.
    while (true) {
      {
        absl::MutexLock lock(&mu);
        if (all_finished()) break;
      }
      EXPECT_OK(commit.Wait(*commit.Enqueue([](SqliteDb&) { return absl::OkStatus(); })));
    }
  }
  for (std::thread& thread : threads) thread.join();
  for (const absl::Status& status : statuses) EXPECT_OK(status);
  EXPECT_OK(commit.Wait(*unwaited));
  EXPECT_THAT(StoredNumbers(dir.File("n.db")), ElementsAre(0, 1, 2, 3, 4, 5));
}

TEST(GroupCommitTest, ABatchThatLeavesWaitedWritesQueuedPassesTheLeadToTheCommitter) {
  ExpectABatchThatLeavesWaitedWritesQueuedPassesTheLeadOn(/*committer_thread=*/true);
}

TEST(GroupCommitTest, WithoutACommitterABatchPassesTheLeadToTheFirstWaitingCaller) {
  ExpectABatchThatLeavesWaitedWritesQueuedPassesTheLeadOn(/*committer_thread=*/false);
}

// The caller that led a batch returns once its own write is durable, and the writes queued
// behind it are committed on the committer thread, not on their callers' threads (under load no
// batch waits for a sleeping caller to be woken and scheduled to lead it). Twice: the committer
// sleeps once no queued write is waited for, and takes the next hand-off.
TEST(GroupCommitTest, TheLeaderReturnsAndTheCommitterThreadLeadsTheWritesQueuedBehindIt) {
  TempDir dir;
  std::unique_ptr<SqliteDb> db = OpenNumbers(dir.File("n.db"));
  ASSERT_NE(db, nullptr);
  GroupCommit commit(*db, /*max_batch=*/64);
  absl::Mutex mu;
  std::set<std::thread::id> callers;     // guarded by mu
  std::set<std::thread::id> committers;  // guarded by mu
  auto caller = [&] {
    absl::MutexLock lock(&mu);
    callers.insert(std::this_thread::get_id());
  };
  for (int round = 0; round < 2; ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    absl::Notification leading, release, led;
    std::thread leader([&] {
      caller();
      EXPECT_OK(commit.Wait(*commit.Enqueue([&](SqliteDb& db) {
        leading.Notify();
        release.WaitForNotification();
        return Insert(0)(db);
      })));
      led.Notify();
    });
    leading.WaitForNotification();
    // Writes queued behind the first batch; each is committed only once the leader has
    // returned (or after 30 s, so that a leader that goes on leading them fails below instead
    // of hanging).
    constexpr int kWriters = 4;
    int finished = 0;  // guarded by mu
    std::vector<std::thread> writers;
    for (int w = 1; w <= kWriters; ++w) {
      writers.emplace_back([&, w] {
        caller();
        EXPECT_OK(commit.Wait(*commit.Enqueue([&, w](SqliteDb& db) {
          {
            absl::MutexLock lock(&mu);
            committers.insert(std::this_thread::get_id());
          }
          led.WaitForNotificationWithTimeout(absl::Seconds(30));
          return Insert(w)(db);
        })));
        absl::MutexLock lock(&mu);
        ++finished;
      });
    }
    absl::SleepFor(absl::Milliseconds(100));  // the writers wait behind the first batch
    release.Notify();
    const bool returned = led.WaitForNotificationWithTimeout(absl::Seconds(30));
    EXPECT_TRUE(returned) << "the caller that led went on leading the writes queued behind it";
    {
      absl::MutexLock lock(&mu);
      const auto all_finished = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
        return finished == kWriters;
      };
      if (!mu.AwaitWithTimeout(absl::Condition(&all_finished), absl::Seconds(60))) {
        // Nobody leads their writes: the writers' threads can never be joined.
        std::fprintf(stderr, "round %d: %d of %d writers still wait after 60 s\n", round,
                     kWriters - finished, kWriters);
        std::abort();
      }
    }
    for (std::thread& writer : writers) writer.join();
    leader.join();
  }
  EXPECT_THAT(StoredNumbers(dir.File("n.db")),
              ::testing::UnorderedElementsAre(0, 1, 2, 3, 4, 0, 1, 2, 3, 4));
  absl::MutexLock lock(&mu);
  std::vector<std::thread::id> committed_by_no_caller;
  std::set_difference(committers.begin(), committers.end(), callers.begin(), callers.end(),
                      std::back_inserter(committed_by_no_caller));
  EXPECT_EQ(committed_by_no_caller.size(), 1u)
      << "the writes behind the first batches ran on " << committers.size() << " threads, of which "
      << committed_by_no_caller.size() << " no caller's";
}

// Writes 1 and 3 around write 2, which inserts 2 and then fails (after releasing its own
// savepoint when `release_its_savepoint`), queued before anyone waits: one batch.
struct AroundAFailingWrite {
  std::shared_ptr<GroupCommit::Ticket> first, failing, last;
};
AroundAFailingWrite QueueAroundAFailingWrite(GroupCommit& commit, bool release_its_savepoint) {
  AroundAFailingWrite writes;
  writes.first = commit.Enqueue(Insert(1));
  writes.failing = commit.Enqueue([release_its_savepoint](SqliteDb& db) -> absl::Status {
    if (absl::Status inserted = Insert(2)(db); !inserted.ok()) return inserted;
    if (release_its_savepoint) {
      if (absl::Status released = db.Exec("RELEASE verb"); !released.ok()) return released;
    }
    return absl::FailedPreconditionError("job 2 is SUCCEEDED");  // after its insert
  });
  writes.last = commit.Enqueue(Insert(3));
  return writes;
}

// A batch of QueueAroundAFailingWrite's three writes on a fresh numbers table.
class FailingWriteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = OpenNumbers(dir_.File("n.db"));
    ASSERT_NE(db_, nullptr);
    commit_ = std::make_unique<GroupCommit>(*db_, /*max_batch=*/64);
  }
  std::vector<int> Stored() const { return StoredNumbers(dir_.File("n.db")); }

  TempDir dir_;
  std::unique_ptr<SqliteDb> db_;
  std::unique_ptr<GroupCommit> commit_;
};

TEST_F(FailingWriteTest, AFailingWriteIsRolledBackAloneAndItsBatchCommits) {
  const AroundAFailingWrite writes = QueueAroundAFailingWrite(*commit_, false);
  EXPECT_OK(commit_->Wait(*writes.last));
  EXPECT_THAT(commit_->Wait(*writes.failing), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_OK(commit_->Wait(*writes.first));
  EXPECT_EQ(commit_->batches_committed(), 1);
  EXPECT_THAT(Stored(), ElementsAre(1, 3));
}

// A write whose savepoint cannot be rolled back to (here it released it itself) cannot be undone
// alone: its changes would commit with the batch although it failed. The whole batch is rolled
// back and fails instead, and the next batch commits normally.
TEST_F(FailingWriteTest, AWriteThatCannotBeUndoneAloneRollsBackItsWholeBatch) {
  const AroundAFailingWrite writes = QueueAroundAFailingWrite(*commit_, true);
  EXPECT_THAT(commit_->Wait(*writes.last),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("rolled back")));
  EXPECT_THAT(commit_->Wait(*writes.failing), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(commit_->Wait(*writes.first), StatusIs(absl::StatusCode::kInternal));
  EXPECT_THAT(Stored(), ::testing::IsEmpty());
  EXPECT_OK(commit_->Run(Insert(4)));
  EXPECT_THAT(Stored(), ElementsAre(4));
}

// WriterRowCache (server/core/writer_row_cache.h) on the numbers table: a row is loaded once,
// dropped when the writer changes it, and dropped when the write that loaded it is rolled back
// with its batch (it read a change that never committed).
TEST_F(FailingWriteTest, TheWritersRowCacheDropsChangedRowsAndRowsReadByARolledBackWrite) {
  ASSERT_OK(commit_->Run(Insert(1)));  // seq 1
  int loads = 0;
  WriterRowCache<int> cache(*db_, *commit_, "numbers",
                            [&loads](SqliteDb& db, int64_t seq) -> absl::StatusOr<int> {
                              ++loads;
                              absl::StatusOr<SqliteDb::Statement*> select =
                                  db.Prepare("SELECT n FROM numbers WHERE seq = ?1");
                              if (!select.ok()) return select.status();
                              Query query(*select);
                              query.Bind(1, seq);
                              absl::StatusOr<bool> row = query.Step();
                              if (!row.ok()) return row.status();
                              if (!*row) return absl::NotFoundError("no such row");
                              return static_cast<int>(query.Int(0));
                            });
  auto read = [&cache](int* n) {
    return [&cache, n](SqliteDb& db) -> absl::Status {
      absl::StatusOr<std::shared_ptr<const int>> got = cache.Get(db, 1);
      if (!got.ok()) return got.status();
      *n = **got;
      return absl::OkStatus();
    };
  };
  auto set = [](int n) {
    return [n](SqliteDb& db) -> absl::Status {
      absl::StatusOr<SqliteDb::Statement*> update =
          db.Prepare("UPDATE numbers SET n = ?1 WHERE seq = 1");
      if (!update.ok()) return update.status();
      Query query(*update);
      query.Bind(1, n);
      return query.Run();
    };
  };
  int n = 0;
  ASSERT_OK(commit_->Run(read(&n)));
  ASSERT_OK(commit_->Run(read(&n)));
  EXPECT_EQ(n, 1);
  EXPECT_EQ(loads, 1) << "the second read came from the cache";

  ASSERT_OK(commit_->Run(set(5)));
  ASSERT_OK(commit_->Run(read(&n)));
  EXPECT_EQ(n, 5) << "the writer's change dropped the cached row";
  EXPECT_EQ(loads, 2);

  // One batch: set 9, read it (uncommitted), then a write that cannot be undone alone rolls the
  // whole batch back.
  int uncommitted = 0;
  std::shared_ptr<GroupCommit::Ticket> changed = commit_->Enqueue(set(9));
  std::shared_ptr<GroupCommit::Ticket> reader = commit_->Enqueue(read(&uncommitted));
  std::shared_ptr<GroupCommit::Ticket> breaking = commit_->Enqueue([](SqliteDb& db) {
    if (absl::Status released = db.Exec("RELEASE verb"); !released.ok()) return released;
    return absl::FailedPreconditionError("fails after releasing its own savepoint");
  });
  EXPECT_THAT(commit_->Wait(*breaking), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(commit_->Wait(*reader), StatusIs(absl::StatusCode::kInternal));
  EXPECT_THAT(commit_->Wait(*changed), StatusIs(absl::StatusCode::kInternal));
  EXPECT_EQ(uncommitted, 9);
  ASSERT_OK(commit_->Run(read(&n)));
  EXPECT_EQ(n, 5) << "the row read inside the rolled-back batch was dropped";
  EXPECT_EQ(Stored(), std::vector<int>{5});
}

// What the three writes of a batch (1, a failing 2, 3) leave in state kept outside the
// database through AfterCommit and OnRollback: each write adds its number to `kept` at once,
// registers its removal as its undo, and logs "n committed" after the commit.
struct KeptOutside {
  std::vector<int> kept;
  std::vector<std::string> log;
};
GroupCommit::Body KeepAndInsert(GroupCommit& commit, KeptOutside& outside, int n, bool fail) {
  return [&commit, &outside, n, fail](SqliteDb& db) -> absl::Status {
    if (absl::Status inserted = Insert(n)(db); !inserted.ok()) return inserted;
    outside.kept.push_back(n);
    commit.OnRollback([&outside, n] {
      outside.log.push_back(absl::StrCat(n, " undone"));
      outside.kept.erase(std::find(outside.kept.begin(), outside.kept.end(), n));
    });
    commit.AfterCommit([&outside, n] { outside.log.push_back(absl::StrCat(n, " committed")); });
    if (fail) return absl::FailedPreconditionError("fails after its changes");
    return absl::OkStatus();
  };
}

TEST_F(FailingWriteTest, AFailedWritesOutsideStateIsUndoneAndTheOthersRunAfterTheCommit) {
  KeptOutside outside;
  commit_->Enqueue(KeepAndInsert(*commit_, outside, 1, false));
  std::shared_ptr<GroupCommit::Ticket> failing =
      commit_->Enqueue(KeepAndInsert(*commit_, outside, 2, true));
  std::shared_ptr<GroupCommit::Ticket> last =
      commit_->Enqueue(KeepAndInsert(*commit_, outside, 3, false));
  EXPECT_OK(commit_->Wait(*last));
  EXPECT_THAT(commit_->Wait(*failing), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(Stored(), ElementsAre(1, 3));
  EXPECT_THAT(outside.kept, ElementsAre(1, 3));
  // 2's undo ran when it failed; the survivors' actions ran once, after the COMMIT.
  EXPECT_THAT(outside.log, ElementsAre("2 undone", "1 committed", "3 committed"));
}

TEST_F(FailingWriteTest, ARolledBackBatchUndoesEveryWritesOutsideStateLatestFirst) {
  KeptOutside outside;
  commit_->Enqueue(KeepAndInsert(*commit_, outside, 1, false));
  // Releases its own savepoint, so it cannot be undone alone: the whole batch is rolled back.
  std::shared_ptr<GroupCommit::Ticket> breaking =
      commit_->Enqueue([&](SqliteDb& db) -> absl::Status {
        if (absl::Status kept = KeepAndInsert(*commit_, outside, 2, false)(db); !kept.ok()) {
          return kept;
        }
        if (absl::Status released = db.Exec("RELEASE verb"); !released.ok()) return released;
        return absl::FailedPreconditionError("fails after releasing its savepoint");
      });
  EXPECT_THAT(commit_->Wait(*breaking), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(Stored(), ::testing::IsEmpty());
  EXPECT_THAT(outside.kept, ::testing::IsEmpty());
  EXPECT_THAT(outside.log, ElementsAre("2 undone", "1 undone"));
}

TEST(GroupCommitTest, ConcurrentWritersAreAllDurableAfterReopen) {
  TempDir dir;
  constexpr int kThreads = 16;
  constexpr int kWritesPerThread = 50;
  {
    std::unique_ptr<SqliteDb> db = OpenNumbers(dir.File("n.db"));
    ASSERT_NE(db, nullptr);
    GroupCommit commit(*db, /*max_batch=*/256);
    std::vector<std::thread> writers;
    for (int t = 0; t < kThreads; ++t) {
      writers.emplace_back([&, t] {
        for (int i = 0; i < kWritesPerThread; ++i) {
          EXPECT_OK(commit.Run(Insert(t * kWritesPerThread + i)));
        }
      });
    }
    for (std::thread& writer : writers) writer.join();
    EXPECT_LE(commit.batches_committed(), kThreads * kWritesPerThread);
  }
  const std::vector<int> stored = StoredNumbers(dir.File("n.db"));
  EXPECT_EQ(std::set<int>(stored.begin(), stored.end()).size(),
            static_cast<size_t>(kThreads * kWritesPerThread));
}

// ---- JobStore's queued verbs ----

TEST(JobStoreQueuedWritesTest, ProgressQueuedInOrderIsStoredInThatOrderWhateverTheWaitOrder) {
  TempDir dir;
  FakeClock clock;
  absl::StatusOr<std::unique_ptr<JobStore>> store = JobStore::Open(dir.File("jobs.db"), clock);
  ASSERT_OK(store);
  ASSERT_OK((*store)->Enqueue("t", WithDefaults(testing::ValidSpec())));
  absl::StatusOr<v1::Worker> worker = (*store)->RegisterWorker(testing::CpuWorker(3.6, false, 1));
  ASSERT_OK(worker);
  absl::StatusOr<std::optional<AttemptRecord>> lease = (*store)->LeaseNext(worker->id(), 1);
  ASSERT_OK(lease);
  ASSERT_TRUE(lease->has_value());
  const std::string job_id = (*lease)->job.id();
  auto progress = [](int step) {
    AttemptProgress update;
    update.attempt = 1;
    update.progress.emplace();
    update.progress->set_step(step);
    return update;
  };
  PendingWrite<JobUpdate> first = (*store)->StartRecordProgress(job_id, progress(1));
  PendingWrite<JobUpdate> second = (*store)->StartRecordProgress(job_id, progress(2));
  absl::StatusOr<JobUpdate> second_done = std::move(second).Wait();
  ASSERT_OK(second_done);
  EXPECT_EQ(second_done->job.progress().step(), 2);
  absl::StatusOr<JobUpdate> first_done = std::move(first).Wait();
  ASSERT_OK(first_done);
  EXPECT_EQ(first_done->job.progress().step(), 1);  // the job as its own write left it
  absl::StatusOr<v1::Job> stored = (*store)->GetJob(job_id);
  ASSERT_OK(stored);
  EXPECT_EQ(stored->progress().step(), 2);
  // A queued touch of an unknown worker fails alone.
  EXPECT_THAT((*store)->StartTouchWorker("w-404").Wait().status(),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_OK((*store)->StartTouchWorker(worker->id()).Wait().status());
  // A bad job id fails before anything is queued.
  EXPECT_THAT((*store)->StartRecordProgress("x", progress(3)).Wait().status(),
              StatusIs(absl::StatusCode::kNotFound));
}

// A child process enqueues jobs from 8 threads and writes each acknowledged id to a pipe; the
// parent SIGKILLs it mid-load and finds every acknowledged job in the reopened file.
TEST(JobStoreQueuedWritesTest, EveryAcknowledgedSubmitSurvivesSigkill) {
  TempDir dir;
  const std::string path = dir.File("jobs.db");
  const v1::JobSpec spec = WithDefaults(testing::ValidSpec());
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(fds[0]);
    RealClock clock;
    absl::StatusOr<std::unique_ptr<JobStore>> store = JobStore::Open(path, clock);
    if (!store.ok()) _exit(2);
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&] {
        while (true) {
          absl::StatusOr<EnqueueResult> enqueued = (*store)->Enqueue("t", spec);
          if (!enqueued.ok()) _exit(3);
          const std::string line = absl::StrCat(enqueued->update.job.id(), "\n");
          if (write(fds[1], line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
            _exit(4);
          }
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
    _exit(0);
  }
  close(fds[1]);
  // Kill once 300 submits were acknowledged (a deadline, not a sleep, bounds the wait).
  std::string received;
  char buffer[4096];
  while (std::count(received.begin(), received.end(), '\n') < 300) {
    const ssize_t n = read(fds[0], buffer, sizeof(buffer));
    if (n <= 0) break;
    received.append(buffer, n);
  }
  ASSERT_EQ(kill(child, SIGKILL), 0);
  while (true) {
    const ssize_t n = read(fds[0], buffer, sizeof(buffer));
    if (n <= 0) break;
    received.append(buffer, n);
  }
  close(fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the child exited by itself with " << WEXITSTATUS(status);

  RealClock clock;
  absl::StatusOr<std::unique_ptr<JobStore>> store = JobStore::Open(path, clock);
  ASSERT_OK(store);
  int acknowledged = 0;
  int lost = 0;
  for (absl::string_view id : absl::StrSplit(received, '\n', absl::SkipEmpty())) {
    ++acknowledged;
    if (!(*store)->GetJob(std::string(id)).ok()) ++lost;
  }
  EXPECT_GE(acknowledged, 300);
  EXPECT_EQ(lost, 0) << lost << " of " << acknowledged << " acknowledged submits were lost";
}

}  // namespace
}  // namespace tuneledger
