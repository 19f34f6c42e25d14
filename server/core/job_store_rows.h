// The ONE place that converts JobStore rows to protos (and the proto enums and times to the
// column values the schema stores). Each *_COLUMNS macro is the column list its *FromRow()
// reads, by position; every SELECT of that row kind starts with it. (Macros, because SQL text
// must stay a string literal to be a cached prepared statement.)
// Thread safety: free functions without shared state.
#ifndef TUNELEDGER_SERVER_CORE_JOB_STORE_ROWS_H_
#define TUNELEDGER_SERVER_CORE_JOB_STORE_ROWS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/core/budget_policy.h"
#include "server/core/sqlite_db.h"
#include "tuneledger/v1/jobs.pb.h"
#include "tuneledger/v1/worker.pb.h"

namespace tuneledger {

#define TL_JOB_COLUMNS                                                                      \
  "jobs.id, jobs.tenant, jobs.spec, jobs.state, jobs.reason, jobs.message, jobs.attempts, " \
  "jobs.worker_id, jobs.progress, jobs.accrued_usd, jobs.gpu_hours, jobs.projected_usd, "   \
  "jobs.rate_usd_per_hour, jobs.adapter_path, jobs.last_checkpoint, jobs.create_time, "     \
  "jobs.start_time, jobs.end_time, jobs.thresholds_crossed, jobs.overrun_raised, "          \
  "(SELECT COUNT(*) FROM attempts WHERE attempts.job_id = jobs.id AND "                     \
  "attempts.state = 'LOST'), "                                                              \
  "(SELECT COUNT(*) FROM attempts WHERE attempts.job_id = jobs.id AND "                     \
  "attempts.state = 'PREEMPTED'), jobs.log_seq"

#define TL_EVENT_COLUMNS                                                                      \
  "seq, job_id, time, kind, state, reason, attempt, step, cost_usd, threshold, value, path, " \
  "message, worker_id"

#define TL_ATTEMPT_COLUMNS                                                             \
  "attempts.attempt, attempts.worker_id, attempts.state, attempts.gpus, "              \
  "attempts.price_per_gpu_hour, attempts.spot, attempts.seconds, attempts.gpu_hours, " \
  "attempts.usd, attempts.start_time, attempts.end_time, "                             \
  "attempts.on_demand_price_per_gpu_hour, attempts.wasted_seconds, attempts.scoring_seconds"
#define TL_ATTEMPT_COLUMN_COUNT 14
#define TL_JOB_COLUMN_COUNT 23

#define TL_WORKER_COLUMNS                                                                 \
  "workers.id, workers.info, workers.state, workers.register_time, "                      \
  "workers.last_heartbeat_time, "                                                         \
  "(SELECT MIN(attempts.job_id) FROM attempts WHERE attempts.worker_id = workers.id AND " \
  "attempts.state = 'RUNNING')"

// Column values.
int64_t ToMicrosColumn(absl::Time time);
absl::Time FromMicrosColumn(int64_t micros);
void SetTimestamp(absl::Time time, google::protobuf::Timestamp& out);
absl::Time FromTimestamp(const google::protobuf::Timestamp& timestamp);

// Job ids are decimal strings outside the store and integers inside. An id has one spelling,
// the canonical one ("17": digits only, no sign, space or leading zero, within int64); nullopt
// for any other string, so " 1" or "01" never names job 1.
std::optional<int64_t> ParseJobId(const std::string& id);

// Rows starting with the matching *_COLUMNS (at column `first`). A serialized message column
// (job spec and progress, worker info) that does not parse is DATA_LOSS naming the row.
absl::StatusOr<v1::Job> JobFromRow(const Query& row, int first = 0);
// The job JobFromRow reads from the row JobStore::Enqueue inserts (QUEUED, nothing run, no
// cost, created at `create_time` to the column's microsecond), built without reading it back.
v1::Job QueuedJobOf(int64_t id, const std::string& tenant, const v1::JobSpec& spec,
                    absl::Time create_time);
BudgetState BudgetStateFromRow(const Query& row, int first = 0);
// The last progress_log row folded into the job (progress_log.h).
int64_t LogSeqFromRow(const Query& row, int first = 0);
v1::JobEvent EventFromRow(const Query& row, int first = 0);
v1::AttemptCost AttemptFromRow(const Query& row, int first = 0);
// WorkerFromRow: `info` (when not null) gets the worker's whole stored WorkerInfo.
absl::StatusOr<v1::Worker> WorkerFromRow(const Query& row, int first = 0,
                                         v1::WorkerInfo* info = nullptr);
// A worker as ListWorkers shows it, from what it registered with (no job, no times).
v1::Worker WorkerFromInfo(const std::string& id, const v1::WorkerInfo& info,
                          v1::Worker::State state);

// attempts.gang: a gang's workers and their GPUs, rank 0's first, as "w-1:2,w-2:2" (worker ids
// are "w-<n>", server/core/job_store.cc); "" for an attempt on one worker. GangFromColumn:
// DATA_LOSS when the text is not of that form.
std::string GangColumn(const std::vector<std::pair<std::string, int>>& members);
absl::StatusOr<std::vector<std::pair<std::string, int>>> GangFromColumn(const std::string& text);

// `bytes` (a stored blob) parsed into `message`; DATA_LOSS "<what>: stored <type> is damaged"
// when they do not parse.
absl::Status ParseStoredMessage(const std::string& bytes, const std::string& what,
                                google::protobuf::MessageLite& message);

}  // namespace tuneledger

#endif  // TUNELEDGER_SERVER_CORE_JOB_STORE_ROWS_H_
