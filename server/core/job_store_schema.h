// The JobStore's schema and its migrations, one step per version (PRAGMA user_version).
//   version 1: jobs, attempts, events, workers
//   version 2: progress_points (downsampled progress history) and the jobs columns that drive
//              its downsampling (history_stride, history_next)
//   version 3: server_keys (the key of worker session and lease tokens)
//   version 4: attempts.on_demand_price_per_gpu_hour, last_checkpoint_time, wasted_seconds
//   version 5: jobs.estimate, jobs.base_model; attempts.scoring_start_time, scoring_seconds
//              (spot saving and preemption waste)
//   version 6: indexes jobs_by_start, jobs_by_end, jobs_by_tenant_{dispatch,start,end} (ListJobs
//              pages without a sort or a filter of every job)
//   version 7: attempts.gang, attempts.rendezvous_slot (where a data-parallel attempt runs)
//   version 8: tenant_queued (each tenant's QUEUED count, kept by triggers on jobs)
//   version 9: progress_log and jobs.log_seq (reports appended, folded later: progress_log.h)
// A new version appends one step to the table in job_store_schema.cc; steps never change once
// released, so every old file migrates forward by running the steps it lacks.
// Thread safety: call with exclusive use of the connection (JobStore::Open does).
#ifndef TUNELEDGER_SERVER_CORE_JOB_STORE_SCHEMA_H_
#define TUNELEDGER_SERVER_CORE_JOB_STORE_SCHEMA_H_

#include "absl/status/status.h"
#include "server/core/sqlite_db.h"

namespace tuneledger {

// The schema version this code writes: the number of migration steps in job_store_schema.cc.
inline constexpr int kJobStoreSchemaVersion = 10;
// The first version whose progress log (progress_log.h) this code reads: the log came in 9, the
// worker contact of its rows in 10. The store reads jobs.log_seq and the log's rows, so it serves
// jobs only from this version on (older ones are opened by migration tests alone).
inline constexpr int kProgressLogSchemaVersion = 10;

// Brings the file from its user_version up to `target_version`, each step in its own
// transaction. FAILED_PRECONDITION when the file is newer than `target_version`.
absl::Status MigrateJobStoreSchema(SqliteDb& db, int target_version);

}  // namespace tuneledger

#endif  // TUNELEDGER_SERVER_CORE_JOB_STORE_SCHEMA_H_
