#include "server/core/job_store_schema.h"

#include <iterator>

#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "tuneledger/v1/jobs.pb.h"

namespace tuneledger {
namespace {

// Times are unix microseconds; enums are the proto enum numbers; specs, progress and worker
// info are serialized protos (their fields evolve without schema steps).
constexpr const char* kMigrations[] = {
    // 1: the job lifecycle.
    R"sql(
CREATE TABLE jobs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  tenant TEXT NOT NULL,
  client_request_id TEXT NOT NULL,
  priority INTEGER NOT NULL,
  gpus INTEGER NOT NULL,
  max_attempts INTEGER NOT NULL,
  spec BLOB NOT NULL,
  state INTEGER NOT NULL,
  reason INTEGER NOT NULL,
  message TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  worker_id TEXT NOT NULL,
  progress BLOB NOT NULL,
  accrued_usd REAL NOT NULL,
  gpu_hours REAL NOT NULL,
  projected_usd REAL NOT NULL,
  rate_usd_per_hour REAL NOT NULL,
  adapter_path TEXT NOT NULL,
  last_checkpoint TEXT NOT NULL,
  thresholds_crossed INTEGER NOT NULL,
  overrun_raised INTEGER NOT NULL,
  create_time INTEGER NOT NULL,
  start_time INTEGER,
  end_time INTEGER
) STRICT;
CREATE UNIQUE INDEX jobs_by_request ON jobs(tenant, client_request_id)
  WHERE client_request_id != '';
CREATE INDEX jobs_by_dispatch ON jobs(state, priority DESC, id);

CREATE TABLE attempts (
  job_id INTEGER NOT NULL REFERENCES jobs(id),
  attempt INTEGER NOT NULL,
  worker_id TEXT NOT NULL,
  state TEXT NOT NULL,
  gpus INTEGER NOT NULL,
  price_per_gpu_hour REAL NOT NULL,
  spot INTEGER NOT NULL,
  seconds REAL NOT NULL,
  gpu_hours REAL NOT NULL,
  usd REAL NOT NULL,
  start_time INTEGER NOT NULL,
  end_time INTEGER,
  message TEXT NOT NULL,
  PRIMARY KEY (job_id, attempt)
) STRICT;
CREATE INDEX attempts_by_worker ON attempts(worker_id, state);

CREATE TABLE events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id INTEGER NOT NULL REFERENCES jobs(id),
  time INTEGER NOT NULL,
  kind INTEGER NOT NULL,
  state INTEGER NOT NULL,
  reason INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  step INTEGER NOT NULL,
  cost_usd REAL NOT NULL,
  threshold REAL NOT NULL,
  value REAL NOT NULL,
  path TEXT NOT NULL,
  message TEXT NOT NULL,
  worker_id TEXT NOT NULL
) STRICT;
CREATE INDEX events_by_job ON events(job_id, seq);

CREATE TABLE workers (
  num INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  info BLOB NOT NULL,
  state INTEGER NOT NULL,
  register_time INTEGER NOT NULL,
  last_heartbeat_time INTEGER NOT NULL
) STRICT;
)sql",
    // 2: downsampled progress history for plotting.
    R"sql(
CREATE TABLE progress_points (
  job_id INTEGER NOT NULL REFERENCES jobs(id),
  ordinal INTEGER NOT NULL,
  progress BLOB NOT NULL,
  PRIMARY KEY (job_id, ordinal)
) STRICT, WITHOUT ROWID;
ALTER TABLE jobs ADD COLUMN history_stride INTEGER NOT NULL DEFAULT 1;
ALTER TABLE jobs ADD COLUMN history_next INTEGER NOT NULL DEFAULT 0;
)sql",
    // 3: the server's secret keys (worker session and lease tokens are HMACs under one), kept
    // with the jobs so that tokens issued before a restart still verify after it.
    R"sql(
CREATE TABLE server_keys (
  name TEXT PRIMARY KEY,
  key BLOB NOT NULL
) STRICT, WITHOUT ROWID;
)sql",
    // 4: spot accounting: the on-demand price a worker declares, when an attempt last wrote a
    // checkpoint, and the lease time a preemption or a lost worker wasted (steps redone).
    R"sql(
ALTER TABLE attempts ADD COLUMN on_demand_price_per_gpu_hour REAL NOT NULL DEFAULT 0;
ALTER TABLE attempts ADD COLUMN last_checkpoint_time INTEGER;
ALTER TABLE attempts ADD COLUMN wasted_seconds REAL NOT NULL DEFAULT 0;
)sql",
    // 5: the pre-flight estimate and the base model's source and licence, recorded at submit;
    // when an attempt's data-selection scoring began and how long it has run.
    R"sql(
ALTER TABLE jobs ADD COLUMN estimate BLOB NOT NULL DEFAULT X'';
ALTER TABLE jobs ADD COLUMN base_model BLOB NOT NULL DEFAULT X'';
ALTER TABLE attempts ADD COLUMN scoring_start_time INTEGER;
ALTER TABLE attempts ADD COLUMN scoring_seconds REAL NOT NULL DEFAULT 0;
)sql",
    // 6: indexes for the pages of ListJobs (dispatch order), for all tenants and for one: QUEUED
    // jobs by priority, RUNNING jobs by start, finished jobs newest first, so that a page reads
    // about page_size rows instead of sorting (or filtering) every job.
    R"sql(
CREATE INDEX jobs_by_start ON jobs(state, start_time, id);
CREATE INDEX jobs_by_end ON jobs(end_time DESC, id DESC);
CREATE INDEX jobs_by_tenant_dispatch ON jobs(tenant, state, priority DESC, id);
CREATE INDEX jobs_by_tenant_start ON jobs(tenant, state, start_time, id);
CREATE INDEX jobs_by_tenant_end ON jobs(tenant, end_time DESC, id DESC);
)sql",
    // 7: where a data-parallel attempt runs: its gang's workers and GPUs (job_store_rows.h
    // GangColumn) and rank 0's rendezvous port slot, so that a restarted server knows them.
    R"sql(
ALTER TABLE attempts ADD COLUMN gang TEXT NOT NULL DEFAULT '';
ALTER TABLE attempts ADD COLUMN rendezvous_slot INTEGER NOT NULL DEFAULT 0;
)sql",
    // 8: what a submit writes, made smaller. Each tenant's count of QUEUED jobs (state 1), kept
    // by triggers on every write of jobs.state or jobs.tenant, so that a submit checks the
    // tenant's cap by reading one row instead of counting up to the cap's worth of index entries.
    // The indexes by start and by end hold only the jobs that have the time (a QUEUED job has
    // neither), so a submit adds entries to 3 of the jobs indexes instead of 7.
    R"sql(
DROP INDEX jobs_by_start;
DROP INDEX jobs_by_end;
DROP INDEX jobs_by_tenant_start;
DROP INDEX jobs_by_tenant_end;
CREATE INDEX jobs_by_start ON jobs(state, start_time, id) WHERE start_time IS NOT NULL;
CREATE INDEX jobs_by_end ON jobs(end_time DESC, id DESC) WHERE end_time IS NOT NULL;
CREATE INDEX jobs_by_tenant_start ON jobs(tenant, state, start_time, id)
  WHERE start_time IS NOT NULL;
CREATE INDEX jobs_by_tenant_end ON jobs(tenant, end_time DESC, id DESC) WHERE end_time IS NOT NULL;
CREATE TABLE tenant_queued (
  tenant TEXT PRIMARY KEY,
  queued INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
INSERT INTO tenant_queued (tenant, queued)
  SELECT tenant, COUNT(*) FROM jobs WHERE state = 1 GROUP BY tenant;
CREATE TRIGGER tenant_queued_on_insert AFTER INSERT ON jobs WHEN NEW.state = 1
BEGIN
  INSERT INTO tenant_queued (tenant, queued) VALUES (NEW.tenant, 1)
    ON CONFLICT (tenant) DO UPDATE SET queued = queued + 1;
END;
CREATE TRIGGER tenant_queued_on_update AFTER UPDATE OF state, tenant ON jobs
  WHEN (OLD.state = 1 OR NEW.state = 1) AND (OLD.state != NEW.state OR OLD.tenant != NEW.tenant)
BEGIN
  UPDATE tenant_queued SET queued = queued - 1 WHERE OLD.state = 1 AND tenant = OLD.tenant;
  INSERT INTO tenant_queued (tenant, queued) SELECT NEW.tenant, 1 WHERE NEW.state = 1
    ON CONFLICT (tenant) DO UPDATE SET queued = queued + 1;
END;
CREATE TRIGGER tenant_queued_on_delete AFTER DELETE ON jobs WHEN OLD.state = 1
BEGIN
  UPDATE tenant_queued SET queued = queued - 1 WHERE tenant = OLD.tenant;
END;
)sql",
    // 9: the progress log. A progress report or a bill appends one row here (rows in append
    // order, so the reports of one commit share a page or two; progress NULL for a cost-only
    // bill) instead of rewriting its job's and attempt's rows; the rows are folded into jobs,
    // attempts and progress_points later (progress_log.h). jobs.log_seq is the last row folded
    // into the job.
    R"sql(
CREATE TABLE progress_log (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  seconds REAL NOT NULL,
  attempt_gpu_hours REAL NOT NULL,
  usd REAL NOT NULL,
  accrued_usd REAL NOT NULL,
  gpu_hours REAL NOT NULL,
  projected_usd REAL NOT NULL,
  rate_usd_per_hour REAL NOT NULL,
  progress BLOB
) STRICT;
ALTER TABLE jobs ADD COLUMN log_seq INTEGER NOT NULL DEFAULT 0;
)sql",
    // 10: a worker's last contact goes into the log row of the report that made it (NULL for the
    // server's own bills) instead of rewriting the worker's row on every report; a fold writes
    // the latest onto workers.last_heartbeat_time (progress_log.h).
    R"sql(
ALTER TABLE progress_log ADD COLUMN worker_contact INTEGER;
)sql",
};
static_assert(v1::Job::QUEUED == 1, "migration 8's triggers name QUEUED by its number");
constexpr int kLatestVersion = static_cast<int>(std::size(kMigrations));
static_assert(kLatestVersion == kJobStoreSchemaVersion, "bump kJobStoreSchemaVersion");

}  // namespace

absl::Status MigrateJobStoreSchema(SqliteDb& db, int target_version) {
  if (target_version < 1 || target_version > kLatestVersion) {
    return absl::InvalidArgumentError(
        absl::StrCat("schema version must be in [1, ", kLatestVersion, "], got ", target_version));
  }
  TL_ASSIGN_OR_RETURN(const int64_t version, db.QueryInt("PRAGMA user_version"));
  if (version > target_version) {
    return absl::FailedPreconditionError(absl::StrCat("the database has schema version ", version,
                                                      ", newer than this server's ", target_version,
                                                      ": use a newer tuneledger-server"));
  }
  for (int64_t next = version + 1; next <= target_version; ++next) {
    TL_RETURN_IF_ERROR(db.Exec("BEGIN IMMEDIATE"));
    absl::Status status = db.Exec(kMigrations[next - 1]);
    // user_version takes no bound parameter; the values are this table's own indexes.
    if (status.ok()) {
      static constexpr const char* kSetVersion[] = {
          "PRAGMA user_version = 1", "PRAGMA user_version = 2", "PRAGMA user_version = 3",
          "PRAGMA user_version = 4", "PRAGMA user_version = 5", "PRAGMA user_version = 6",
          "PRAGMA user_version = 7", "PRAGMA user_version = 8", "PRAGMA user_version = 9",
          "PRAGMA user_version = 10"};
      static_assert(std::size(kSetVersion) == std::size(kMigrations));
      status = db.Exec(kSetVersion[next - 1]);
    }
    if (status.ok()) status = db.Exec("COMMIT");
    if (!status.ok()) {
      if (absl::Status rolled_back = db.Exec("ROLLBACK"); !rolled_back.ok()) {
        TL_LOG(ERROR) << "schema migration to version " << next
                      << ": ROLLBACK failed: " << rolled_back.message();
      }
      return absl::Status(status.code(), absl::StrCat("schema migration to version ", next, ": ",
                                                      status.message()));
    }
    TL_LOG(INFO) << "job store schema migrated to version " << next;
  }
  return absl::OkStatus();
}

}  // namespace tuneledger
