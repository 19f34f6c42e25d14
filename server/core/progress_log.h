// The progress log: how the store takes progress reports at the rate of a thousand workers.
//
// A progress report used to rewrite its job's row, its attempt's row and a history point in
// every commit, and the ticker's bill every running job's two rows twice a second: three or four
// pages of WAL per write, each fsync'ed. Now each of them appends one row to the progress_log
// table (job_store_schema.cc, version 9), whose rows are in append order, so the writes of one
// group commit share a page or two. A job's rows are folded into jobs, attempts and
// progress_points (one write of each row per fold, however many rows it folds) by the job's
// next verb (an eval, a checkpoint, the attempt's end: JobStore::StartTransition), by the write
// that finds kFoldAfter of its job's rows waiting, by a read of the job's history, and when the
// store opens. Every report is durable in the log the moment it is acknowledged.
//
// Reads see every acknowledged write without a fold: LatestReports keeps each running job's
// latest logged bill and progress, published once their commit is durable, and a read applies
// them over the job's row when the row has not folded them yet (jobs.log_seq, the last row
// folded, is older).
#ifndef TUNELEDGER_SERVER_CORE_PROGRESS_LOG_H_
#define TUNELEDGER_SERVER_CORE_PROGRESS_LOG_H_

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "server/core/cost_model.h"
#include "tuneledger/v1/jobs.pb.h"

namespace tuneledger {

class GroupCommit;
class SqliteDb;

// One row of the log: the attempt's bill and the job's cost after it, the job's progress with
// it (serialized, the latest eval loss merged in; none for a cost-only bill), and when the
// attempt's worker was last heard from, if the report came from it (none for the server's own
// bills). A restarted server bills each attempt up to its worker's last contact.
struct LoggedReport {
  int attempt = 0;
  AttemptBill bill;
  std::optional<std::string> progress;
  std::optional<absl::Time> worker_contact;
};

// The writer's side: the rows each job has waiting, kept in memory too, so that a fold reads
// nothing back. Only the group commit's leader uses it, inside writes; every change registers
// its undo with the GroupCommit, so that it still matches the table after a write or a batch is
// rolled back.
class ProgressLog {
 public:
  // Rows a job may have waiting before the write that logs the next one folds them.
  static constexpr size_t kFoldAfter = 64;

  explicit ProgressLog(int max_points) : max_points_(max_points) {}

  // Reads the rows waiting from the table (the store's open).
  absl::Status Load(SqliteDb& db);
  // Appends `report` for `job_id`; its row's seq.
  absl::StatusOr<int64_t> Append(SqliteDb& db, GroupCommit& commit, int64_t job_id,
                                 LoggedReport report);
  // Folds `job_id`'s waiting rows, oldest first, into its job row (the latest row's cost, the
  // latest progress, log_seq), its attempt's bill, its history points (one per row with
  // progress) and its attempt's worker's last contact (the later of the row's and the logged
  // one: a heartbeat may have written a later one since). The rows stay in the table (below the
  // job's log_seq) until a trim deletes every folded row at once.
  absl::Status Fold(SqliteDb& db, GroupCommit& commit, int64_t job_id);
  // Fold for every job with rows waiting, then the trim.
  absl::Status FoldAll(SqliteDb& db, GroupCommit& commit);
  // How many rows `job_id` has waiting.
  size_t Waiting(int64_t job_id) const;
  // The latest progress among `job_id`'s waiting rows (serialized), or null.
  const std::string* LatestProgress(int64_t job_id) const;

 private:
  struct Row {
    int64_t seq;
    std::shared_ptr<const LoggedReport> report;
  };
  // Append trims the folded rows every kTrimEvery rows.
  static constexpr int64_t kTrimEvery = 1024;
  // Deletes the rows every job has folded (all below the oldest row still waiting).
  absl::Status Trim(SqliteDb& db);

  const int max_points_;
  std::map<int64_t, std::vector<Row>> waiting_;  // job id -> its rows, oldest first
};

// The readers' side: each running job's latest logged report, and each worker's latest logged
// contact.
class LatestReports {
 public:
  struct Report {
    int64_t seq = 0;  // the row of the bill below
    int attempt = 0;
    AttemptBill bill;
    int64_t progress_seq = 0;  // the row of the progress below; 0: none logged
    v1::Progress progress;
    std::string worker_id;  // the attempt's worker, and the report's contact with it if any
    std::optional<absl::Time> worker_contact;
  };

  // `report` is durable (called after its commit). A cost-only bill (progress_seq 0) keeps the
  // progress of the job's entry.
  void Publish(int64_t job_id, std::shared_ptr<Report> report);
  // The job has left RUNNING with every row folded. Its entry is dropped some seconds later,
  // not now: a read whose snapshot predates the fold may still need it.
  void Retire(int64_t job_id);
  // Whether the job has an entry (it may have rows waiting in the log).
  bool Has(int64_t job_id) const;
  // Sets `job`'s cost and progress to its latest logged ones where they are newer than the
  // job's row (whose last folded row is `log_seq`).
  void Apply(int64_t log_seq, v1::Job& job) const;
  // The same for the job's attempts: the bill of the attempt the latest row is from.
  void Apply(int64_t job_id, int64_t log_seq, absl::Span<v1::AttemptCost> attempts) const;
  void Apply(int64_t job_id, int64_t log_seq, v1::AttemptCost& attempt) const;
  // Sets `worker`'s last heartbeat time to its latest logged contact where that is later.
  void Apply(v1::Worker& worker) const;

 private:
  std::shared_ptr<const Report> Find(int64_t job_id, int64_t log_seq) const;
  void DropRetiredLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  absl::flat_hash_map<int64_t, std::shared_ptr<const Report>> reports_ ABSL_GUARDED_BY(mu_);
  struct Retired {
    absl::Time time;
    int64_t job_id;
    int64_t seq;  // the entry retired; a newer one (the job runs again) is kept
  };
  std::deque<Retired> retired_ ABSL_GUARDED_BY(mu_);
  // Worker id -> the latest contact logged for it. One entry per worker that has run a job
  // (as many as the workers table keeps); an entry never goes back in time, so a read applies it
  // whatever its snapshot.
  absl::flat_hash_map<std::string, absl::Time> contacts_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tuneledger

#endif  // TUNELEDGER_SERVER_CORE_PROGRESS_LOG_H_
