#include "server/core/group_commit.h"

#include <algorithm>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "server/core/sqlite_db.h"

namespace tuneledger {

GroupCommit::GroupCommit(SqliteDb& db, int max_batch, bool committer_thread)
    : db_(db), max_batch_(std::max(1, max_batch)), committer_thread_(committer_thread) {}

std::shared_ptr<GroupCommit::Ticket> GroupCommit::Enqueue(Body body) {
  auto ticket = std::make_shared<Ticket>();
  ticket->body = std::move(body);
  absl::MutexLock lock(&mu_);
  queue_.push_back(ticket);
  return ticket;
}

absl::Status GroupCommit::Wait(Ticket& ticket) {
  absl::MutexLock lock(&mu_);
  AwaitDoneLocked(ticket);
  return ticket.status;
}

void GroupCommit::AwaitDone(Ticket& ticket) {
  absl::MutexLock lock(&mu_);
  AwaitDoneLocked(ticket);
}

GroupCommit::~GroupCommit() {
  std::thread committer;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    committer_wake_.Signal();
    committer.swap(committer_);
  }
  if (committer.joinable()) committer.join();
}

void GroupCommit::AwaitDoneLocked(Ticket& ticket) {
  while (true) {
    ticket.waiting = true;
    while (!ticket.done && committing_) ticket.wake.Wait(&mu_);
    if (ticket.done) {
      ticket.waiting = false;
      return;
    }
    // Lead: the ticket is still queued (only a leader dequeues, and it marks what it took done
    // before it stops leading). It stays marked waiting, so that a batch that leaves it queued
    // (more than max_batch_ ahead of it) hands it to the committer below.
    committing_ = true;
    CommitNextBatchLocked();
    if (QueuedWriteIsWaitedLocked()) {
      HandLeadToCommitterLocked();
    } else {
      committing_ = false;
    }
  }
}

void GroupCommit::CommitNextBatchLocked() {
  std::vector<std::shared_ptr<Ticket>> batch;
  while (!queue_.empty() && static_cast<int>(batch.size()) < max_batch_) {
    batch.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  mu_.Unlock();
  std::vector<absl::Status> statuses = RunBatch(batch);
  mu_.Lock();
  for (size_t i = 0; i < batch.size(); ++i) {
    batch[i]->status = std::move(statuses[i]);
    batch[i]->done = true;
    batch[i]->body = nullptr;  // drop what it captured
    if (batch[i]->waiting) batch[i]->wake.Signal();
  }
  ++batches_committed_;
}

bool GroupCommit::QueuedWriteIsWaitedLocked() const {
  return std::any_of(queue_.begin(), queue_.end(),
                     [](const std::shared_ptr<Ticket>& queued) { return queued->waiting; });
}

void GroupCommit::HandLeadToCommitterLocked() {
  if (committer_.joinable()) {
    handed_ = true;
    committer_wake_.Signal();
    return;
  }
  if (committer_thread_) {
    try {
      handed_ = true;
      committer_ = std::thread([this] { CommitterLoop(); });  // takes the lead once mu_ is free
      return;
    } catch (const std::system_error& error) {
      handed_ = false;
      TL_LOG(WARNING) << "group commit: cannot start the committer thread (" << error.what()
                      << "); the callers lead every batch";
    }
  }
  // No committer: the first caller still waiting in the queue leads the next batch.
  committing_ = false;
  for (const std::shared_ptr<Ticket>& queued : queue_) {
    if (queued->waiting) {
      queued->wake.Signal();
      break;
    }
  }
}

void GroupCommit::CommitterLoop() {
  absl::MutexLock lock(&mu_);
  while (true) {
    while (!handed_ && !stopping_) committer_wake_.Wait(&mu_);
    if (!handed_) return;  // stopping, with no lead to take
    handed_ = false;
    // The lead is this thread's (committing_ is still set): every write queued now or while it
    // commits that a caller waits for is committed before it lets go.
    do {
      CommitNextBatchLocked();
    } while (QueuedWriteIsWaitedLocked());
    committing_ = false;
  }
}

int64_t GroupCommit::batches_committed() {
  absl::MutexLock lock(&mu_);
  return batches_committed_;
}

void GroupCommit::AfterCommit(std::function<void()> fn) { after_commit_.push_back(std::move(fn)); }

void GroupCommit::OnRollback(std::function<void()> undo) { undo_.push_back(std::move(undo)); }

void GroupCommit::UndoSince(size_t undo_mark, size_t after_commit_mark) {
  while (undo_.size() > undo_mark) {
    std::function<void()> undo = std::move(undo_.back());
    undo_.pop_back();
    undo();
  }
  after_commit_.resize(std::min(after_commit_.size(), after_commit_mark));
}

std::vector<absl::Status> GroupCommit::RunBatch(const std::vector<std::shared_ptr<Ticket>>& batch) {
  std::vector<absl::Status> statuses(batch.size());
  if (absl::Status begun = db_.ExecCached("BEGIN IMMEDIATE"); !begun.ok()) {
    std::fill(statuses.begin(), statuses.end(), begun);
    return statuses;
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    // Each write is a savepoint, so that its failure undoes only its own changes.
    absl::Status status = db_.ExecCached("SAVEPOINT verb");
    if (!status.ok()) {
      statuses[i] = std::move(status);  // nothing of it ran
      continue;
    }
    const size_t undo_mark = undo_.size();
    const size_t after_commit_mark = after_commit_.size();
    status = batch[i]->body(db_);
    absl::Status closed = status.ok() ? absl::OkStatus() : db_.ExecCached("ROLLBACK TO verb");
    if (!status.ok() && closed.ok()) UndoSince(undo_mark, after_commit_mark);
    if (closed.ok()) closed = db_.ExecCached("RELEASE verb");
    if (!closed.ok()) {
      // The transaction may now hold a failed write's changes, or have lost the savepoints of
      // the writes before: nothing of the batch commits. The failed write keeps its own error.
      statuses = AbandonBatch(batch.size(), closed);
      if (!status.ok()) statuses[i] = std::move(status);
      return statuses;
    }
    statuses[i] = std::move(status);
  }
  if (absl::Status committed = db_.ExecCached("COMMIT"); !committed.ok()) {
    return AbandonBatch(batch.size(), committed);
  }
  undo_.clear();
  std::vector<std::function<void()>> after_commit;
  after_commit.swap(after_commit_);
  for (std::function<void()>& fn : after_commit) fn();
  return statuses;
}

std::vector<absl::Status> GroupCommit::AbandonBatch(size_t size, const absl::Status& cause) {
  if (absl::Status rolled_back = db_.ExecCached("ROLLBACK"); !rolled_back.ok()) {
    TL_LOG(ERROR) << "group commit: ROLLBACK after \"" << cause.message()
                  << "\" failed: " << rolled_back.message();
  }
  UndoSince(0, 0);
  return std::vector<absl::Status>(
      size, absl::Status(cause.code(), absl::StrCat("not stored: the transaction it shared was "
                                                    "rolled back (",
                                                    cause.message(), ")")));
}

}  // namespace tuneledger
