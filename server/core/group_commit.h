// GroupCommit: many callers' writes share one SQLite transaction and one fsync, and each caller
// is answered only after that commit is durable.
//
//   GroupCommit commit(writer_connection, /*max_batch=*/256);
//   std::shared_ptr<GroupCommit::Ticket> ticket = commit.Enqueue([](SqliteDb& db) { ... });
//   ...                                   // e.g. release the caller's own lock here
//   absl::Status status = commit.Wait(*ticket);   // durable (or failed) once this returns
//
// Design (leader/follower group commit; a thread of its own only while writes keep coming):
//   - Enqueue() only appends the write to a FIFO queue under a small mutex: it does no I/O, so
//     a caller may enqueue while holding its own lock and so fix the order of its writes
//     relative to its in-memory decisions (the Scheduler enqueues under its mutex and waits
//     outside it).
//   - Wait() blocks until the ticket is done. When no batch is being committed, the waiting
//     caller becomes the leader: it takes up to max_batch writes from the head of the queue
//     (in queue order), runs them on the connection in one BEGIN IMMEDIATE ... COMMIT, each as
//     a savepoint, and then marks every one done with its status. Writes that arrive during
//     that commit wait in the queue and form the next batch, so the batch grows with the load
//     (one fsync per batch, not per write).
//   - When a batch leaves writes queued that a caller waits for, the lead passes to the
//     committer thread (started on the first such hand-off), which leads batch after batch
//     until no queued write is waited for, then sleeps until the next hand-off. The caller that
//     led returns as soon as its own write is durable, and under load no batch waits for a
//     sleeping caller's thread to be woken and scheduled to lead it: the one thread that commits
//     is already running. An idle store commits on the caller's thread, with no hand-off.
//   - Each waiter sleeps on its own ticket's condition variable: the batch's leader wakes the
//     callers of the writes it committed. Nothing else wakes a waiter, so an Enqueue (often
//     under the caller's own lock) never waits behind hundreds of waiters being woken to
//     re-check.
//   - The connection is used only by the leader, without the queue mutex held: enqueuing never
//     waits for I/O.
//   - A write that fails is rolled back to its savepoint alone; a failed BEGIN or COMMIT, or a
//     savepoint that cannot be rolled back to or released, rolls back and fails every write of
//     its batch (never a failed write's changes committed, never a write acknowledged that the
//     transaction lost). A write runs on the leader's thread (a caller's or the committer's),
//     possibly after its caller's stack frame has moved on: it must own what it uses (capture
//     by value).
//
// Thread safety: Enqueue() and Wait() are thread-safe. mu_ guards the queue, the leader flags
// and every ticket's done/status; the connection is touched only by the current leader. The
// destructor joins the committer thread; no caller may still be waiting then.
#ifndef TUNELEDGER_SERVER_CORE_GROUP_COMMIT_H_
#define TUNELEDGER_SERVER_CORE_GROUP_COMMIT_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace tuneledger {

class SqliteDb;

class GroupCommit {
 public:
  using Body = std::function<absl::Status(SqliteDb&)>;
  // One queued write. Only GroupCommit reads or changes it.
  struct Ticket {
    Body body;
    bool done = false;     // guarded by GroupCommit::mu_
    bool waiting = false;  // guarded by GroupCommit::mu_: its caller is in Wait()
    absl::Status status;   // guarded by GroupCommit::mu_; valid once done
    absl::CondVar wake;    // signalled (under GroupCommit::mu_) when done, or to lead
  };

  // `db` must outlive this object and be used by nobody else while it lives. Without
  // `committer_thread` no thread is ever started: after a caller's batch the first caller still
  // waiting in the queue is woken to lead the next one (also what happens when the thread
  // cannot be started).
  GroupCommit(SqliteDb& db, int max_batch, bool committer_thread = true);
  ~GroupCommit();
  GroupCommit(const GroupCommit&) = delete;
  GroupCommit& operator=(const GroupCommit&) = delete;

  // Queues `body`; writes commit in the order they were queued. No I/O.
  std::shared_ptr<Ticket> Enqueue(Body body);
  // Blocks until `ticket`'s batch has committed: the body's status, or the commit's failure.
  absl::Status Wait(Ticket& ticket);
  // Wait without the status, for a thread that waits on behalf of the one that will read it
  // (one waiter on a ticket at a time): once it returns, Wait() returns at once.
  void AwaitDone(Ticket& ticket);
  // Enqueue + Wait.
  absl::Status Run(Body body) { return Wait(*Enqueue(std::move(body))); }

  // Batches committed so far (tests and benchmarks: writes per fsync).
  int64_t batches_committed();

  // For a write's body only (on the leader's thread, while it runs), to keep state outside the
  // database in step with it. `fn` runs once the body's batch has committed, in the order the
  // calls were made; never if the write or its batch is rolled back.
  void AfterCommit(std::function<void()> fn);
  // `undo` runs if the body's changes are rolled back (its own failure, or its batch's), after
  // the rollback, the latest registered first; never once the batch has committed.
  void OnRollback(std::function<void()> undo);

 private:
  // Returns once `ticket` is done, leading a batch when no one else does.
  void AwaitDoneLocked(Ticket& ticket) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The leader's turn (committing_ set): takes the next batch from the queue, runs it without
  // mu_ held, marks its writes done and wakes their callers.
  void CommitNextBatchLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether a write still queued has a caller in Wait() or AwaitDone().
  bool QueuedWriteIsWaitedLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Passes the lead (committing_ stays set) to the committer thread, starting it if need be;
  // without one, wakes the first caller still waiting in the queue to lead.
  void HandLeadToCommitterLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The committer thread: leads each hand-off until no queued write is waited for.
  void CommitterLoop();
  // Runs `batch` in one transaction; returns each write's status.
  std::vector<absl::Status> RunBatch(const std::vector<std::shared_ptr<Ticket>>& batch);
  // Rolls the open transaction back: `size` statuses saying so, with `cause`'s code.
  std::vector<absl::Status> AbandonBatch(size_t size, const absl::Status& cause);
  // Runs the OnRollback actions registered since `undo_mark` (latest first) and drops the
  // AfterCommit actions registered since `after_commit_mark`.
  void UndoSince(size_t undo_mark, size_t after_commit_mark);

  SqliteDb& db_;  // used only by the leader
  const int max_batch_;
  const bool committer_thread_;
  absl::Mutex mu_;
  std::deque<std::shared_ptr<Ticket>> queue_ ABSL_GUARDED_BY(mu_);
  bool committing_ ABSL_GUARDED_BY(mu_) = false;  // a caller or the committer leads now
  bool handed_ ABSL_GUARDED_BY(mu_) = false;      // the lead waits for the committer to take it
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;    // the destructor runs
  absl::CondVar committer_wake_;                  // signalled (under mu_) on a hand-off or stop
  std::thread committer_ ABSL_GUARDED_BY(mu_);    // started by the first hand-off
  int64_t batches_committed_ ABSL_GUARDED_BY(mu_) = 0;
  // The running batch's AfterCommit and OnRollback actions; only the leader touches them.
  std::vector<std::function<void()>> after_commit_;
  std::vector<std::function<void()>> undo_;
};

// A write queued on a GroupCommit that produces a value: Wait() returns it once durable.
// Move-only; Wait() at most once.
template <typename T>
class PendingWrite {
 public:
  // Completes the value on the waiting caller's thread once the write is durable: work that
  // need not hold up the leader, whose thread runs every write of a batch one after another.
  using Finish = std::function<absl::Status(T&)>;

  // A write that failed before it was queued (e.g. a bad argument).
  explicit PendingWrite(absl::Status error) : error_(std::move(error)) {}
  PendingWrite(GroupCommit& commit, std::shared_ptr<GroupCommit::Ticket> ticket,
               std::shared_ptr<T> result, Finish finish = nullptr)
      : commit_(&commit),
        ticket_(std::move(ticket)),
        result_(std::move(result)),
        finish_(std::move(finish)) {}

  // Blocks until the write is durable (or has failed), leaving its outcome to Wait(), which
  // then returns at once: for a thread that waits on behalf of the one that calls Wait().
  void AwaitCommit() {
    if (commit_ != nullptr) commit_->AwaitDone(*ticket_);
  }

  absl::StatusOr<T> Wait() && {
    if (commit_ == nullptr) return error_;
    const absl::Status status = commit_->Wait(*ticket_);
    if (!status.ok()) return status;
    if (finish_) {
      if (absl::Status finished = finish_(*result_); !finished.ok()) return finished;
    }
    return std::move(*result_);
  }

 private:
  absl::Status error_;
  GroupCommit* commit_ = nullptr;
  std::shared_ptr<GroupCommit::Ticket> ticket_;
  std::shared_ptr<T> result_;  // written by the body on the leader's thread, read after Wait
  Finish finish_;
};

// A queued write without a value: Wait().status().
using PendingStatus = PendingWrite<std::monostate>;

}  // namespace tuneledger

#endif  // TUNELEDGER_SERVER_CORE_GROUP_COMMIT_H_
