#include "server/core/job_store.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/util/message_differencer.h>

#include <algorithm>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/types/span.h"
#include "base/random_bytes.h"
#include "base/status_macros.h"
#include "server/core/cost_model.h"
#include "server/core/job_states.h"
#include "server/core/job_store_rows.h"
#include "server/core/job_store_schema.h"
#include "server/core/sqlite_db.h"

namespace tuneledger {

namespace {

std::string StateName(v1::Job::State state) { return v1::Job::State_Name(state); }

absl::Status JobNotFound(const std::string& job_id) {
  return absl::NotFoundError(absl::StrCat("job \"", job_id, "\" not found"));
}

absl::StatusOr<int64_t> RequireJobId(const std::string& job_id) {
  std::optional<int64_t> id = ParseJobId(job_id);
  if (!id.has_value()) return JobNotFound(job_id);
  return *id;
}

// `log_seq`, when given: the last progress_log row folded into the row (progress_log.h).
absl::StatusOr<v1::Job> LoadJob(SqliteDb& db, int64_t id, BudgetState* budget = nullptr,
                                int64_t* log_seq = nullptr) {
  TL_ASSIGN_OR_RETURN(SqliteDb::Statement * select,
                      db.Prepare("SELECT " TL_JOB_COLUMNS " FROM jobs WHERE id = ?1"));
  Query query(select);
  query.Bind(1, id);
  TL_ASSIGN_OR_RETURN(const bool found, query.Step());
  if (!found) return JobNotFound(absl::StrCat(id));
  if (budget != nullptr) *budget = BudgetStateFromRow(query);
  if (log_seq != nullptr) *log_seq = LogSeqFromRow(query);
  return JobFromRow(query);
}

// Calls on_row for each row `sql` (which binds the job's id as ?1) selects, after checking the
// job exists (NOT_FOUND otherwise, rather than an empty list); stops at on_row's first error.
absl::Status ForEachRowOfJob(SqliteDb& db, int64_t id, const char* sql,
                             absl::FunctionRef<absl::Status(Query&)> on_row) {
  TL_RETURN_IF_ERROR(LoadJob(db, id).status());
  TL_ASSIGN_OR_RETURN(SqliteDb::Statement * select, db.Prepare(sql));
  Query query(select);
  query.Bind(1, id);
  while (true) {
    TL_ASSIGN_OR_RETURN(const bool row, query.Step());
    if (!row) return absl::OkStatus();
    TL_RETURN_IF_ERROR(on_row(query));
  }
}

absl::StatusOr<v1::AttemptCost> LoadAttempt(SqliteDb& db, int64_t job_id, int attempt) {
  TL_ASSIGN_OR_RETURN(
      SqliteDb::Statement * select,
      db.Prepare("SELECT " TL_ATTEMPT_COLUMNS " FROM attempts WHERE job_id = ?1 AND attempt = ?2"));
  Query query(select);
  query.Bind(1, job_id).Bind(2, attempt);
  TL_ASSIGN_OR_RETURN(const bool found, query.Step());
  if (!found) {
    return absl::NotFoundError(absl::StrCat("job ", job_id, " has no attempt ", attempt));
  }
  return AttemptFromRow(query);
}

// The precondition of every verb about a running attempt.
absl::Status RequireRunningAttempt(const v1::Job& job, int attempt) {
  if (job.state() == v1::Job::RUNNING && job.attempts() == attempt) return absl::OkStatus();
  if (job.state() == v1::Job::RUNNING) {
    return absl::FailedPreconditionError(absl::StrCat("job ", job.id(), " is RUNNING attempt ",
                                                      job.attempts(), ", not attempt ", attempt));
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "job ", job.id(), " is ", StateName(job.state()), ", not RUNNING attempt ", attempt));
}

// The one writer of event rows. `event.job_id` is the decimal job id. Appends the stored event
// (with its seq and time) to `out`.
absl::Status AppendEvent(SqliteDb& db, v1::JobEvent event, absl::Time time,
                         std::vector<v1::JobEvent>& out) {
  TL_ASSIGN_OR_RETURN(
      SqliteDb::Statement * insert,
      db.Prepare("INSERT INTO events (job_id, time, kind, state, reason, attempt, step, cost_usd, "
                 "threshold, value, path, message, worker_id) "
                 "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"));
  TL_ASSIGN_OR_RETURN(const int64_t job_id, RequireJobId(event.job_id()));
  Query query(insert);
  query.Bind(1, job_id)
      .Bind(2, ToMicrosColumn(time))
      .Bind(3, static_cast<int64_t>(event.kind()))
      .Bind(4, static_cast<int64_t>(event.state()))
      .Bind(5, static_cast<int64_t>(event.reason()))
      .Bind(6, event.attempt())
      .Bind(7, event.step())
      .Bind(8, event.cost_usd())
      .Bind(9, event.threshold())
      .Bind(10, event.value())
      .Bind(11, event.path())
      .Bind(12, event.message())
      .Bind(13, event.worker_id());
  TL_RETURN_IF_ERROR(query.Run());
  event.set_seq(db.LastInsertRowId());
  SetTimestamp(time, *event.mutable_time());
  out.push_back(std::move(event));
  return absl::OkStatus();
}

// An event about `job` in its current state (after the transition).
v1::JobEvent EventFor(const v1::Job& job, v1::JobEvent::Kind kind) {
  v1::JobEvent event;
  event.set_job_id(job.id());
  event.set_kind(kind);
  event.set_state(job.state());
  event.set_reason(job.reason());
  event.set_attempt(job.attempts());
  event.set_step(job.progress().step());
  event.set_cost_usd(job.cost().accrued_usd());
  event.set_worker_id(job.worker_id());
  return event;
}

absl::Status UpdateJobCost(SqliteDb& db, int64_t job_id, const v1::CostSummary& cost) {
  TL_ASSIGN_OR_RETURN(
      SqliteDb::Statement * update,
      db.Prepare("UPDATE jobs SET accrued_usd = ?2, gpu_hours = ?3, projected_usd = ?4, "
                 "rate_usd_per_hour = ?5 WHERE id = ?1"));
  Query query(update);
  query.Bind(1, job_id)
      .Bind(2, cost.accrued_usd())
      .Bind(3, cost.gpu_hours())
      .Bind(4, cost.projected_usd())
      .Bind(5, cost.rate_usd_per_hour());
  return query.Run();
}

// Closes the running attempt `end.attempt` with its outcome and final bill; the job's cost
// becomes final too (nothing projected beyond what was spent, no running rate).
absl::Status EndAttempt(SqliteDb& db, int64_t job_id, const AttemptEnd& end) {
  TL_ASSIGN_OR_RETURN(SqliteDb::Statement * update,
                      db.Prepare("UPDATE attempts SET state = ?3, end_time = ?4, message = ?5, "
                                 "seconds = ?6, gpu_hours = ?7, usd = ?8, wasted_seconds = ?9 "
                                 "WHERE job_id = ?1 AND attempt = ?2"));
  Query query(update);
  query.Bind(1, job_id)
      .Bind(2, end.attempt)
      .Bind(3, end.outcome)
      .Bind(4, ToMicrosColumn(end.end_time))
      .Bind(5, end.message)
      .Bind(6, end.bill.seconds)
      .Bind(7, end.bill.gpu_hours)
      .Bind(8, end.bill.usd)
      .Bind(9, end.wasted_seconds);
  TL_RETURN_IF_ERROR(query.Run());
  v1::CostSummary cost = end.bill.job_cost;
  cost.set_projected_usd(cost.accrued_usd());
  cost.set_rate_usd_per_hour(0);
  return UpdateJobCost(db, job_id, cost);
}

// Moves the job to a new state; clears the worker when it is not RUNNING anymore and stamps
// end_time on final states.
absl::Status SetJobState(SqliteDb& db, int64_t job_id, v1::Job::State state, v1::Job::Reason reason,
                         const std::string& message, absl::Time now) {
  TL_ASSIGN_OR_RETURN(SqliteDb::Statement * update,
                      db.Prepare("UPDATE jobs SET state = ?2, reason = ?3, message = ?4, "
                                 "worker_id = CASE WHEN ?2 = ?6 THEN worker_id ELSE '' END, "
                                 "end_time = CASE WHEN ?5 THEN ?7 ELSE NULL END WHERE id = ?1"));
  Query query(update);
  query.Bind(1, job_id)
      .Bind(2, static_cast<int64_t>(state))
      .Bind(3, static_cast<int64_t>(reason))
      .Bind(4, message)
      .Bind(5, IsFinalState(state))
      .Bind(6, static_cast<int64_t>(v1::Job::RUNNING))
      .Bind(7, ToMicrosColumn(now));
  return query.Run();
}

std::string WorkerNotFoundMessage(const std::string& worker_id) {
  return absl::StrCat("worker \"", worker_id, "\" not found: register again");
}

// The worker's info and stored state (IDLE, LOST or GONE).
absl::StatusOr<std::pair<v1::WorkerInfo, v1::Worker::State>> LoadWorkerInfo(
    SqliteDb& db, const std::string& worker_id) {
  TL_ASSIGN_OR_RETURN(SqliteDb::Statement * select,
                      db.Prepare("SELECT info, state FROM workers WHERE id = ?1"));
  Query query(select);
  query.Bind(1, worker_id);
  TL_ASSIGN_OR_RETURN(const bool found, query.Step());
  if (!found) return absl::NotFoundError(WorkerNotFoundMessage(worker_id));
  v1::WorkerInfo info;
  TL_RETURN_IF_ERROR(ParseStoredMessage(query.Text(0), absl::StrCat("worker ", worker_id), info));
  return std::make_pair(info, static_cast<v1::Worker::State>(query.Int(1)));
}

absl::Status RequireActiveWorker(const std::string& worker_id, v1::Worker::State state) {
  if (state == v1::Worker::LOST || state == v1::Worker::GONE) {
    return absl::FailedPreconditionError(absl::StrCat(
        "worker ", worker_id, " is ", v1::Worker::State_Name(state), ": register again"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<JobStore>> JobStore::Open(const std::string& path,
                                                         const Clock& clock,
                                                         JobStoreOptions options) {
  TL_ASSIGN_OR_RETURN(std::unique_ptr<SqliteDb> writer, SqliteDb::Open(path));
  writer->SetBusyTimeout(options.busy_timeout);
  TL_RETURN_IF_ERROR(writer->Exec("PRAGMA journal_mode = WAL"));
  TL_RETURN_IF_ERROR(writer->Exec("PRAGMA synchronous = FULL"));
  TL_RETURN_IF_ERROR(writer->Exec("PRAGMA foreign_keys = ON"));
  // The writer keeps 64 MiB of pages (SQLite's default: 2 MiB) and lets the WAL grow to 16,384
  // pages (64 MiB at 4 KiB; default 1,000) before the committing thread copies it back into the
  // database. A progress report rewrites a few rows of every running job each second, so a
  // longer WAL folds many rewrites of one page into one copy: progress intake at 1,000 workers
  // went from 11,100-12,500 to 15,200-17,900 durable reports/s (bench/README.md). Durability is
  // unchanged: every commit is still fsync'ed (synchronous = FULL).
  TL_RETURN_IF_ERROR(writer->Exec("PRAGMA cache_size = -65536"));
  TL_RETURN_IF_ERROR(writer->Exec("PRAGMA wal_autocheckpoint = 16384"));
  TL_RETURN_IF_ERROR(MigrateJobStoreSchema(*writer, options.schema_version));

  std::vector<std::unique_ptr<SqliteDb>> readers;
  for (int i = 0; i < std::max(1, options.reader_connections); ++i) {
    TL_ASSIGN_OR_RETURN(std::unique_ptr<SqliteDb> reader, SqliteDb::Open(path));
    reader->SetBusyTimeout(options.busy_timeout);
    TL_RETURN_IF_ERROR(reader->Exec("PRAGMA query_only = ON"));
    readers.push_back(std::move(reader));
  }
  std::unique_ptr<JobStore> store(
      new JobStore(std::move(writer), std::move(readers), clock, options));
  if (options.schema_version >= kProgressLogSchemaVersion) {
    // What a crash left in the progress log goes into the jobs before anything reads them.
    TL_RETURN_IF_ERROR(store->Write([&](SqliteDb& db) -> absl::Status {
      TL_RETURN_IF_ERROR(store->log_.Load(db));
      return store->log_.FoldAll(db, store->commit_);
    }));
  }
  return store;
}

JobStore::JobStore(std::unique_ptr<SqliteDb> writer, std::vector<std::unique_ptr<SqliteDb>> readers,
                   const Clock& clock, JobStoreOptions options)
    : clock_(clock),
      options_(options),
      writer_(std::move(writer)),
      commit_(*writer_, options.max_batch),
      log_(options.max_progress_points),
      writer_jobs_(*writer_, commit_, "jobs",
                   [](SqliteDb& db, int64_t id) { return LoadJob(db, id); }) {
  for (std::unique_ptr<SqliteDb>& db : readers) {
    auto reader = std::make_unique<Reader>();
    absl::MutexLock lock(&reader->mu);
    reader->db = std::move(db);
    readers_.push_back(std::move(reader));
  }
}

JobStore::~JobStore() = default;

absl::Status JobStore::Write(absl::FunctionRef<absl::Status(SqliteDb&)> body) {
  // `body` outlives the wait: Run returns once the batch that ran it has committed.
  return commit_.Run([body](SqliteDb& db) { return body(db); });
}

absl::Status JobStore::Read(absl::FunctionRef<absl::Status(SqliteDb&)> body) {
  // The first free connection; when all are busy, wait on one in turn.
  Reader* reader = nullptr;
  for (const std::unique_ptr<Reader>& candidate : readers_) {
    if (candidate->mu.TryLock()) {
      reader = candidate.get();
      break;
    }
  }
  if (reader == nullptr) {
    reader = readers_[next_reader_.fetch_add(1) % readers_.size()].get();
    reader->mu.Lock();
  }
  SqliteDb& db = *reader->db;
  absl::Status status = db.ExecCached("BEGIN");
  if (status.ok()) {
    status = body(db);
    const absl::Status ended = db.ExecCached("COMMIT");
    if (status.ok()) status = ended;
  }
  reader->mu.Unlock();
  return status;
}

absl::StatusOr<JobUpdate> JobStore::Transition(
    const std::string& job_id, std::optional<int> running_attempt,
    absl::FunctionRef<absl::Status(const TransitionContext&)> write,
    absl::FunctionRef<std::vector<v1::JobEvent>(const v1::Job& before, const v1::Job& after)>
        events) {
  // The references stay valid: Wait returns once the write has run.
  return StartTransition(
             job_id, running_attempt, [write](const TransitionContext& t) { return write(t); },
             [events](const v1::Job& before, const v1::Job& after) {
               return events(before, after);
             })
      .Wait();
}

PendingWrite<JobUpdate> JobStore::StartTransition(
    const std::string& job_id, std::optional<int> running_attempt,
    std::function<absl::Status(const TransitionContext&)> write,
    std::function<std::vector<v1::JobEvent>(const v1::Job& before, const v1::Job& after)> events) {
  absl::StatusOr<int64_t> parsed = RequireJobId(job_id);
  if (!parsed.ok()) return PendingWrite<JobUpdate>(parsed.status());
  const int64_t id = *parsed;
  const absl::Time now = clock_.Now();
  auto result = std::make_shared<JobUpdate>();
  std::shared_ptr<GroupCommit::Ticket> ticket =
      commit_.Enqueue([this, id, now, running_attempt, write = std::move(write),
                       events = std::move(events), result](SqliteDb& db) -> absl::Status {
        // Every verb sees, and writes over, the job with all its reports folded in.
        TL_RETURN_IF_ERROR(log_.Fold(db, commit_, id));
        TL_ASSIGN_OR_RETURN(const v1::Job before, LoadJob(db, id));
        if (running_attempt.has_value()) {
          TL_RETURN_IF_ERROR(RequireRunningAttempt(before, *running_attempt));
        }
        TL_RETURN_IF_ERROR(write(TransitionContext{db, id, before, now}));
        TL_ASSIGN_OR_RETURN(result->job, LoadJob(db, id));
        if (before.state() == v1::Job::RUNNING && result->job.state() != v1::Job::RUNNING) {
          commit_.AfterCommit([this, id] { latest_.Retire(id); });
        }
        for (v1::JobEvent& event : events(before, result->job)) {
          TL_RETURN_IF_ERROR(AppendEvent(db, std::move(event), now, result->events));
        }
        return absl::OkStatus();
      });
  return PendingWrite<JobUpdate>(commit_, std::move(ticket), std::move(result));
}

absl::StatusOr<EnqueueResult> JobStore::Enqueue(const std::string& tenant, const v1::JobSpec& spec,
                                                std::optional<int> max_queued_for_tenant,
                                                const JobSubmitFacts& facts) {
  EnqueueResult result;
  const absl::Time now = clock_.Now();
  // Serialized before the write: the committing thread, which runs every writer's statements
  // one after another, only binds them.
  const std::string spec_bytes = spec.SerializeAsString();
  const std::string estimate_bytes = facts.estimate.SerializeAsString();
  const std::string base_model_bytes = facts.base_model.SerializeAsString();
  TL_RETURN_IF_ERROR(Write([&](SqliteDb& db) -> absl::Status {
    if (!spec.client_request_id().empty()) {
      TL_ASSIGN_OR_RETURN(
          SqliteDb::Statement * find,
          db.Prepare("SELECT id FROM jobs WHERE tenant = ?1 AND client_request_id = ?2"));
      Query query(find);
      query.Bind(1, tenant).Bind(2, spec.client_request_id());
      TL_ASSIGN_OR_RETURN(const bool found, query.Step());
      if (found) {
        TL_RETURN_IF_ERROR(log_.Fold(db, commit_, query.Int(0)));
        TL_ASSIGN_OR_RETURN(result.update.job, LoadJob(db, query.Int(0)));
        // A retry carries the same spec; another spec under the same key is a mistake that a
        // silent answer with the first job would hide.
        if (!google::protobuf::util::MessageDifferencer::Equals(result.update.job.spec(), spec)) {
          return absl::AlreadyExistsError(absl::StrCat(
              "client_request_id: \"", spec.client_request_id(), "\" was already used for job ",
              result.update.job.id(), " with a different spec; use a new id for a new job"));
        }
        result.deduplicated = true;
        return absl::OkStatus();
      }
    }
    if (max_queued_for_tenant.has_value()) {
      // Read in the transaction that inserts, so concurrent submits cannot pass the cap; the
      // count is kept by triggers on jobs (job_store_schema.cc, version 8).
      TL_ASSIGN_OR_RETURN(SqliteDb::Statement * count,
                          db.Prepare("SELECT queued FROM tenant_queued WHERE tenant = ?1"));
      Query query(count);
      query.Bind(1, tenant);
      TL_ASSIGN_OR_RETURN(const bool found, query.Step());
      const int64_t queued = found ? query.Int(0) : 0;
      if (queued >= *max_queued_for_tenant) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "tenant \"", tenant, "\" has ", queued,
            " QUEUED jobs, the most this server queues for one tenant: cancel some or wait until "
            "they start"));
      }
    }
    TL_ASSIGN_OR_RETURN(
        SqliteDb::Statement * insert,
        db.Prepare("INSERT INTO jobs (tenant, client_request_id, priority, gpus, max_attempts, "
                   "spec, state, reason, message, attempts, worker_id, progress, accrued_usd, "
                   "gpu_hours, projected_usd, rate_usd_per_hour, adapter_path, last_checkpoint, "
                   "thresholds_crossed, overrun_raised, create_time, estimate, base_model) "
                   "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, '', 0, '', X'', 0, 0, 0, 0, '', '', "
                   "0, 0, ?8, ?9, ?10)"));
    {
      Query query(insert);
      query.Bind(1, tenant)
          .Bind(2, spec.client_request_id())
          .Bind(3, spec.priority())
          .Bind(4, spec.gpus())
          .Bind(5, spec.max_attempts())
          .BindBlob(6, spec_bytes)
          .Bind(7, static_cast<int64_t>(v1::Job::QUEUED))
          .Bind(8, ToMicrosColumn(now))
          .BindBlob(9, estimate_bytes)
          .BindBlob(10, base_model_bytes);
      TL_RETURN_IF_ERROR(query.Run());
    }
    result.update.job = QueuedJobOf(db.LastInsertRowId(), tenant, spec, now);
    return AppendEvent(db, EventFor(result.update.job, v1::JobEvent::SUBMITTED), now,
                       result.update.events);
  }));
  return result;
}

absl::StatusOr<std::optional<AttemptRecord>> JobStore::LeaseNext(const std::string& worker_id,
                                                                 int free_gpus,
                                                                 int rendezvous_slot) {
  std::optional<AttemptRecord> record;
  TL_RETURN_IF_ERROR(Write([&](SqliteDb& db) -> absl::Status {
    TL_ASSIGN_OR_RETURN(auto worker, LoadWorkerInfo(db, worker_id));
    const auto& [info, worker_state] = worker;
    TL_RETURN_IF_ERROR(RequireActiveWorker(worker_id, worker_state));
    TL_ASSIGN_OR_RETURN(SqliteDb::Statement * pick,
                        db.Prepare("SELECT id FROM jobs WHERE state = ?1 AND gpus <= ?2 "
                                   "ORDER BY priority DESC, id LIMIT 1"));
    int64_t job_id = 0;
    {
      Query query(pick);
      query.Bind(1, static_cast<int64_t>(v1::Job::QUEUED)).Bind(2, free_gpus);
      TL_ASSIGN_OR_RETURN(const bool found, query.Step());
      if (!found) return absl::OkStatus();
      job_id = query.Int(0);
    }
    TL_ASSIGN_OR_RETURN(record,
                        StartAttempt(db, job_id, worker_id,
                                     GangPricing{info.price_per_gpu_hour(),
                                                 info.on_demand_price_per_gpu_hour(), info.spot()},
                                     AttemptPlacement{{}, rendezvous_slot}));
    return absl::OkStatus();
  }));
  return record;
}

absl::StatusOr<std::optional<GangJob>> JobStore::NextGangJob(int free_gpus, int capacity) {
  std::optional<GangJob> found;
  TL_RETURN_IF_ERROR(Read([&](SqliteDb& db) -> absl::Status {
    TL_ASSIGN_OR_RETURN(SqliteDb::Statement * pick,
                        db.Prepare("SELECT id, gpus FROM jobs WHERE state = ?1 AND gpus > ?2 "
                                   "AND gpus <= ?3 ORDER BY priority DESC, id LIMIT 1"));
    Query query(pick);
    query.Bind(1, static_cast<int64_t>(v1::Job::QUEUED)).Bind(2, free_gpus).Bind(3, capacity);
    TL_ASSIGN_OR_RETURN(const bool row, query.Step());
    if (row) found = GangJob{absl::StrCat(query.Int(0)), static_cast<int>(query.Int(1))};
    return absl::OkStatus();
  }));
  return found;
}

absl::StatusOr<std::optional<AttemptRecord>> JobStore::LeaseToGang(
    const std::string& job_id, const std::string& worker_id, const GangPricing& pricing,
    const AttemptPlacement& placement) {
  const std::optional<int64_t> id = ParseJobId(job_id);
  if (!id) return absl::NotFoundError(absl::StrCat("job \"", job_id, "\" not found"));
  std::optional<AttemptRecord> record;
  TL_RETURN_IF_ERROR(Write([&](SqliteDb& db) -> absl::Status {
    TL_ASSIGN_OR_RETURN(auto worker, LoadWorkerInfo(db, worker_id));
    TL_RETURN_IF_ERROR(RequireActiveWorker(worker_id, worker.second));
    TL_ASSIGN_OR_RETURN(v1::Job job, LoadJob(db, *id));
    if (job.state() != v1::Job::QUEUED) return absl::OkStatus();  // taken or ended meanwhile
    TL_ASSIGN_OR_RETURN(record, StartAttempt(db, *id, worker_id, pricing, placement));
    return absl::OkStatus();
  }));
  return record;
}

absl::StatusOr<AttemptRecord> JobStore::StartAttempt(SqliteDb& db, int64_t job_id,
                                                     const std::string& worker_id,
                                                     const GangPricing& pricing,
                                                     const AttemptPlacement& placement) {
  const absl::Time now = clock_.Now();
  TL_ASSIGN_OR_RETURN(v1::Job job, LoadJob(db, job_id));
  const int attempt = job.attempts() + 1;
  TL_ASSIGN_OR_RETURN(
      SqliteDb::Statement * start,
      db.Prepare("UPDATE jobs SET state = ?2, reason = 0, message = '', attempts = ?3, "
                 "worker_id = ?4, start_time = COALESCE(start_time, ?5), "
                 "rate_usd_per_hour = 0 WHERE id = ?1"));
  {
    Query query(start);
    query.Bind(1, job_id)
        .Bind(2, static_cast<int64_t>(v1::Job::RUNNING))
        .Bind(3, attempt)
        .Bind(4, worker_id)
        .Bind(5, ToMicrosColumn(now));
    TL_RETURN_IF_ERROR(query.Run());
  }
  TL_ASSIGN_OR_RETURN(
      SqliteDb::Statement * insert,
      db.Prepare("INSERT INTO attempts (job_id, attempt, worker_id, state, gpus, "
                 "price_per_gpu_hour, spot, seconds, gpu_hours, usd, start_time, message, "
                 "on_demand_price_per_gpu_hour, gang, rendezvous_slot) "
                 "VALUES (?1, ?2, ?3, 'RUNNING', ?4, ?5, ?6, 0, 0, 0, ?7, '', ?8, ?9, ?10)"));
  {
    Query query(insert);
    query.Bind(1, job_id)
        .Bind(2, attempt)
        .Bind(3, worker_id)
        .Bind(4, job.spec().gpus())
        .Bind(5, pricing.price_per_gpu_hour)
        .Bind(6, pricing.spot)
        .Bind(7, ToMicrosColumn(now))
        .Bind(8, pricing.on_demand_price_per_gpu_hour)
        .Bind(9, GangColumn(placement.members))
        .Bind(10, placement.rendezvous_slot);
    TL_RETURN_IF_ERROR(query.Run());
  }
  AttemptRecord leased;
  leased.placement = placement;
  TL_ASSIGN_OR_RETURN(leased.job, LoadJob(db, job_id, &leased.budget));
  TL_ASSIGN_OR_RETURN(leased.attempt, LoadAttempt(db, job_id, attempt));
  v1::JobEvent event = EventFor(leased.job, v1::JobEvent::STARTED);
  event.set_path(leased.job.last_checkpoint());
  if (!leased.job.last_checkpoint().empty()) {
    event.set_message(absl::StrCat("resuming from ", leased.job.last_checkpoint()));
  }
  TL_RETURN_IF_ERROR(AppendEvent(db, event, now, leased.events));
  return leased;
}

namespace {

absl::Status SetProgressBlob(SqliteDb& db, int64_t id, const std::string& bytes) {
  TL_ASSIGN_OR_RETURN(SqliteDb::Statement * set,
                      db.Prepare("UPDATE jobs SET progress = ?2 WHERE id = ?1"));
  Query query(set);
  query.Bind(1, id).BindBlob(2, bytes);
  return query.Run();
}

// Lease seconds of a requeued attempt whose steps are lost: from its last CHECKPOINT report
// (its start, without one) to its end; the next attempt computes them again from that
// checkpoint. A checkpoint handed over with the end itself (a preempted trainer's final one,
// new to the job) loses nothing.
absl::StatusOr<double> WastedSeconds(SqliteDb& db, int64_t job_id, const v1::Job& before,
                                     const AttemptEnd& end) {
  if (!end.last_checkpoint.empty() && end.last_checkpoint != before.last_checkpoint()) return 0.0;
  TL_ASSIGN_OR_RETURN(SqliteDb::Statement * select,
                      db.Prepare("SELECT start_time, last_checkpoint_time FROM attempts "
                                 "WHERE job_id = ?1 AND attempt = ?2"));
  Query query(select);
  query.Bind(1, job_id).Bind(2, end.attempt);
  TL_ASSIGN_OR_RETURN(const bool found, query.Step());
  if (!found) {
    return absl::NotFoundError(absl::StrCat("job ", job_id, " has no attempt ", end.attempt));
  }
  absl::Time saved = FromMicrosColumn(query.Int(0));
  if (!query.IsNull(1)) saved = std::max(saved, FromMicrosColumn(query.Int(1)));
  return std::max(0.0, absl::ToDoubleSeconds(end.end_time - saved));
}

absl::Status SetLastCheckpoint(SqliteDb& db, int64_t id, const std::string& path) {
  TL_ASSIGN_OR_RETURN(SqliteDb::Statement * set,
                      db.Prepare("UPDATE jobs SET last_checkpoint = ?2 WHERE id = ?1"));
  Query query(set);
  query.Bind(1, id).Bind(2, path);
  return query.Run();
}

}  // namespace

absl::StatusOr<JobUpdate> JobStore::RecordProgress(const std::string& job_id,
                                                   const AttemptProgress& update) {
  return StartRecordProgress(job_id, update).Wait();
}

PendingWrite<JobUpdate> JobStore::StartRecordProgress(const std::string& job_id,
                                                      AttemptProgress update) {
  // The store's hottest write (every running attempt, every report interval, and every tick):
  // one row appended to the progress log (progress_log.h). The job after it is the job's row
  // (from the writer's cache) with the new cost and the latest progress, put together by the
  // caller once the write is durable: the leader's thread runs every report of a batch one after
  // another, and copying the job was a quarter of each.
  absl::StatusOr<int64_t> parsed = RequireJobId(job_id);
  if (!parsed.ok()) return PendingWrite<JobUpdate>(parsed.status());
  const int64_t id = *parsed;
  struct Recorded {
    std::shared_ptr<const v1::Job> row;    // the job's row as the write read it
    v1::CostSummary cost;                  // the bill's job cost
    std::optional<v1::Progress> progress;  // replaces the row's
    std::optional<std::string> logged;     // else the latest logged progress, serialized
  };
  auto recorded = std::make_shared<Recorded>();
  std::shared_ptr<GroupCommit::Ticket> ticket = commit_.Enqueue(
      [this, id, update = std::move(update), recorded](SqliteDb& db) -> absl::Status {
        TL_ASSIGN_OR_RETURN(std::shared_ptr<const v1::Job> row, writer_jobs_.Get(db, id));
        TL_RETURN_IF_ERROR(RequireRunningAttempt(*row, update.attempt));
        if (update.scoring_report.has_value()) {
          TL_ASSIGN_OR_RETURN(
              SqliteDb::Statement * scoring,
              db.Prepare("UPDATE attempts SET scoring_start_time = COALESCE(scoring_start_time, "
                         "?3), scoring_seconds = (?3 - COALESCE(scoring_start_time, ?3)) / 1e6 "
                         "WHERE job_id = ?1 AND attempt = ?2"));
          Query query(scoring);
          query.Bind(1, id).Bind(2, update.attempt).Bind(3, ToMicrosColumn(*update.scoring_report));
          TL_RETURN_IF_ERROR(query.Run());
        }
        LoggedReport logged;
        logged.attempt = update.attempt;
        logged.bill = update.bill;
        logged.worker_contact = update.worker_contact;
        auto published = std::make_shared<LatestReports::Report>();
        published->attempt = logged.attempt;
        published->bill = logged.bill;
        if (update.worker_contact.has_value()) {
          // A RUNNING job's worker_id is its attempt's worker (rank 0's, for a gang).
          published->worker_id = row->worker_id();
          published->worker_contact = update.worker_contact;
        }
        if (update.progress.has_value()) {
          // Evaluation comes on its own reports (RecordEval, which folds the log and writes the
          // row): the row's eval loss is the latest, and stays until the next one.
          v1::Progress& progress = published->progress;
          progress = *update.progress;
          if (!progress.has_eval_loss() && row->progress().has_eval_loss()) {
            progress.set_eval_loss(row->progress().eval_loss());
          }
          logged.progress = progress.SerializeAsString();
          recorded->progress = progress;
        } else if (const std::string* latest = log_.LatestProgress(id); latest != nullptr) {
          // A cost-only bill: the job's progress is its latest logged report's.
          recorded->logged = *latest;
        }
        const bool has_progress = logged.progress.has_value();
        TL_ASSIGN_OR_RETURN(published->seq, log_.Append(db, commit_, id, std::move(logged)));
        if (has_progress) published->progress_seq = published->seq;
        commit_.AfterCommit([this, id, published = std::move(published)]() mutable {
          latest_.Publish(id, std::move(published));
        });
        // A job's rows fold every kFoldAfter of them (its verbs fold them sooner).
        if (log_.Waiting(id) >= ProgressLog::kFoldAfter) {
          TL_RETURN_IF_ERROR(log_.Fold(db, commit_, id));
        }
        recorded->row = std::move(row);
        recorded->cost = update.bill.job_cost;
        return absl::OkStatus();
      });
  // The body's result is `recorded`; JobUpdate is made of it on the caller's thread.
  auto result = std::make_shared<JobUpdate>();
  return PendingWrite<JobUpdate>(
      commit_, std::move(ticket), std::move(result),
      [id, recorded = std::move(recorded)](JobUpdate& done) -> absl::Status {
        v1::Job& job = done.job;
        job = *recorded->row;
        v1::CostSummary& cost = *job.mutable_cost();
        cost.set_accrued_usd(recorded->cost.accrued_usd());
        cost.set_gpu_hours(recorded->cost.gpu_hours());
        cost.set_projected_usd(recorded->cost.projected_usd());
        cost.set_rate_usd_per_hour(recorded->cost.rate_usd_per_hour());
        if (recorded->progress.has_value()) {
          *job.mutable_progress() = *std::move(recorded->progress);
        } else if (recorded->logged.has_value()) {
          TL_RETURN_IF_ERROR(ParseStoredMessage(
              *recorded->logged, absl::StrCat("job ", id, " progress"), *job.mutable_progress()));
        }
        return absl::OkStatus();
      });
}

absl::StatusOr<JobUpdate> JobStore::RecordEval(const std::string& job_id, int attempt, int step,
                                               double eval_loss) {
  return Transition(
      job_id, attempt,
      [&](const TransitionContext& t) {
        v1::Progress progress = t.before.progress();
        progress.set_eval_loss(eval_loss);
        return SetProgressBlob(t.db, t.id, progress.SerializeAsString());
      },
      [&](const v1::Job&, const v1::Job& after) {
        v1::JobEvent event = EventFor(after, v1::JobEvent::EVAL);
        event.set_step(step);
        event.set_value(eval_loss);
        return std::vector<v1::JobEvent>{event};
      });
}

absl::StatusOr<JobUpdate> JobStore::RecordCheckpoint(const std::string& job_id, int attempt,
                                                     int step, const std::string& path) {
  return Transition(
      job_id, attempt,
      [&](const TransitionContext& t) -> absl::Status {
        TL_RETURN_IF_ERROR(SetLastCheckpoint(t.db, t.id, path));
        // When this attempt last saved its work: what a preemption after it wastes starts here.
        TL_ASSIGN_OR_RETURN(SqliteDb::Statement * set,
                            t.db.Prepare("UPDATE attempts SET last_checkpoint_time = ?3 "
                                         "WHERE job_id = ?1 AND attempt = ?2"));
        Query query(set);
        query.Bind(1, t.id).Bind(2, attempt).Bind(3, ToMicrosColumn(t.now));
        return query.Run();
      },
      [&](const v1::Job&, const v1::Job& after) {
        v1::JobEvent event = EventFor(after, v1::JobEvent::CHECKPOINT);
        event.set_step(step);
        event.set_path(path);
        return std::vector<v1::JobEvent>{event};
      });
}

absl::StatusOr<JobUpdate> JobStore::RecordBudget(const std::string& job_id, int attempt,
                                                 const BudgetDecision& decision, double accrued_usd,
                                                 double projected_usd) {
  return Transition(
      job_id, attempt,
      [&](const TransitionContext& t) -> absl::Status {
        TL_ASSIGN_OR_RETURN(SqliteDb::Statement * set,
                            t.db.Prepare("UPDATE jobs SET thresholds_crossed = ?2, "
                                         "overrun_raised = ?3 WHERE id = ?1"));
        Query query(set);
        query.Bind(1, t.id)
            .Bind(2, decision.next_state.thresholds_crossed)
            .Bind(3, decision.next_state.overrun_raised);
        return query.Run();
      },
      [&](const v1::Job& before, const v1::Job&) {
        std::vector<v1::JobEvent> events;
        const double budget = before.spec().budget().usd();
        for (const double threshold : decision.crossed_thresholds) {
          v1::JobEvent& event =
              events.emplace_back(EventFor(before, v1::JobEvent::BUDGET_THRESHOLD));
          event.set_threshold(threshold);
          event.set_cost_usd(accrued_usd);
          event.set_message(absl::StrCat("accrued ", FormatUsd(accrued_usd), " crossed ",
                                         absl::StrFormat("%g", threshold * 100), "% of the ",
                                         FormatUsd(budget), " budget"));
        }
        if (decision.raise_projected_overrun) {
          v1::JobEvent& event =
              events.emplace_back(EventFor(before, v1::JobEvent::PROJECTED_OVERRUN));
          event.set_cost_usd(accrued_usd);
          event.set_value(projected_usd);
          event.set_message(absl::StrCat("projected total ", FormatUsd(projected_usd),
                                         " exceeds the ", FormatUsd(budget), " budget"));
        }
        return events;
      });
}

absl::StatusOr<JobUpdate> JobStore::Requeue(const std::string& job_id, const AttemptEnd& end) {
  if (end.outcome != "PREEMPTED" && end.outcome != "LOST") {
    return absl::InvalidArgumentError(
        absl::StrCat("requeue outcome must be PREEMPTED or LOST, got \"", end.outcome, "\""));
  }
  bool exhausted = false;
  double wasted_usd = 0;
  AttemptEnd ended_attempt = end;
  absl::StatusOr<JobUpdate> update = Transition(
      job_id, end.attempt,
      [&](const TransitionContext& t) -> absl::Status {
        TL_ASSIGN_OR_RETURN(ended_attempt.wasted_seconds,
                            WastedSeconds(t.db, t.id, t.before, ended_attempt));
        TL_RETURN_IF_ERROR(EndAttempt(t.db, t.id, ended_attempt));
        TL_ASSIGN_OR_RETURN(const v1::AttemptCost closed, LoadAttempt(t.db, t.id, end.attempt));
        wasted_usd = closed.wasted_usd();
        if (!end.last_checkpoint.empty()) {
          TL_RETURN_IF_ERROR(SetLastCheckpoint(t.db, t.id, end.last_checkpoint));
        }
        const std::string what = absl::StrCat("attempt ", end.attempt, " ended ", end.outcome,
                                              end.message.empty() ? "" : ": ", end.message);
        // Only lost attempts are failures; preemptions have their own, higher cap.
        const bool lost = end.outcome == "LOST";
        const int cap = lost ? t.before.spec().max_attempts() : kMaxPreemptedAttempts;
        TL_ASSIGN_OR_RETURN(SqliteDb::Statement * select,
                            t.db.Prepare("SELECT COUNT(*) FROM attempts WHERE job_id = ?1 AND "
                                         "state = ?2"));
        Query count(select);
        count.Bind(1, t.id).Bind(2, end.outcome);
        TL_ASSIGN_OR_RETURN(const bool counted, count.Step());
        const int64_t ended = counted ? count.Int(0) : 0;
        exhausted = ended >= cap;
        if (exhausted) {
          return SetJobState(t.db, t.id, v1::Job::FAILED, v1::Job::ATTEMPTS_EXHAUSTED,
                             absl::StrCat(what, "; ", ended,
                                          lost ? " attempts lost, the job's max_attempts is "
                                               : " attempts preempted, the cap is ",
                                          cap),
                             t.now);
        }
        return SetJobState(t.db, t.id, v1::Job::QUEUED, v1::Job::REASON_UNSPECIFIED, what, t.now);
      },
      [&](const v1::Job& before, const v1::Job& after) {
        v1::JobEvent event =
            EventFor(after, exhausted ? v1::JobEvent::FAILED : v1::JobEvent::REQUEUED);
        event.set_attempt(end.attempt);
        event.set_worker_id(before.worker_id());
        event.set_path(after.last_checkpoint());
        event.set_message(after.message());
        return std::vector<v1::JobEvent>{event};
      });
  if (update.ok()) update->wasted_usd = wasted_usd;
  return update;
}

absl::StatusOr<JobUpdate> JobStore::Finish(const std::string& job_id, const AttemptEnd& end,
                                           v1::Job::State state, v1::Job::Reason reason,
                                           const std::string& adapter_path) {
  if (state != v1::Job::SUCCEEDED && state != v1::Job::FAILED) {
    return absl::InvalidArgumentError(
        absl::StrCat("finish state must be SUCCEEDED or FAILED, got ", StateName(state)));
  }
  return Transition(
      job_id, end.attempt,
      [&](const TransitionContext& t) -> absl::Status {
        TL_RETURN_IF_ERROR(EndAttempt(t.db, t.id, end));
        TL_RETURN_IF_ERROR(SetJobState(t.db, t.id, state, reason, end.message, t.now));
        if (end.last_checkpoint.empty() && adapter_path.empty()) return absl::OkStatus();
        TL_ASSIGN_OR_RETURN(
            SqliteDb::Statement * set,
            t.db.Prepare("UPDATE jobs SET adapter_path = ?2, "
                         "last_checkpoint = CASE WHEN ?3 = '' THEN last_checkpoint ELSE ?3 END "
                         "WHERE id = ?1"));
        Query query(set);
        query.Bind(1, t.id).Bind(2, adapter_path).Bind(3, end.last_checkpoint);
        return query.Run();
      },
      [&](const v1::Job& before, const v1::Job& after) {
        v1::JobEvent event = EventFor(
            after, state == v1::Job::SUCCEEDED ? v1::JobEvent::SUCCEEDED : v1::JobEvent::FAILED);
        event.set_worker_id(before.worker_id());
        event.set_path(adapter_path);
        event.set_message(end.message);
        return std::vector<v1::JobEvent>{event};
      });
}

absl::StatusOr<JobUpdate> JobStore::Cancel(const std::string& job_id, v1::Job::Reason reason,
                                           const std::string& message,
                                           const std::optional<AttemptEnd>& running_attempt) {
  return Transition(
      job_id, std::nullopt,
      [&](const TransitionContext& t) -> absl::Status {
        const v1::Job& job = t.before;
        if (job.state() != v1::Job::QUEUED && job.state() != v1::Job::RUNNING) {
          return absl::FailedPreconditionError(
              absl::StrCat("job ", job.id(), " is ", StateName(job.state()),
                           ": only a QUEUED or RUNNING job can be cancelled"));
        }
        if (job.state() == v1::Job::RUNNING) {
          AttemptEnd end;
          if (running_attempt.has_value()) {
            end = *running_attempt;
          } else {
            TL_ASSIGN_OR_RETURN(const v1::AttemptCost last,
                                LoadAttempt(t.db, t.id, job.attempts()));
            end.attempt = job.attempts();
            end.end_time = t.now;
            end.bill.seconds = last.seconds();
            end.bill.gpu_hours = last.gpu_hours();
            end.bill.usd = last.usd();
            end.bill.job_cost = job.cost();
          }
          end.outcome = "CANCELLED";
          if (end.message.empty()) end.message = message;
          TL_RETURN_IF_ERROR(RequireRunningAttempt(job, end.attempt));
          TL_RETURN_IF_ERROR(EndAttempt(t.db, t.id, end));
        }
        return SetJobState(t.db, t.id, v1::Job::CANCELLED, reason, message, t.now);
      },
      [&](const v1::Job& before, const v1::Job& after) {
        v1::JobEvent event = EventFor(after, v1::JobEvent::CANCELLED);
        event.set_worker_id(before.worker_id());
        event.set_message(message);
        return std::vector<v1::JobEvent>{event};
      });
}

absl::StatusOr<v1::Worker> JobStore::RegisterWorker(const v1::WorkerInfo& info) {
  const absl::Time now = clock_.Now();
  v1::Worker result;
  TL_RETURN_IF_ERROR(Write([&](SqliteDb& db) -> absl::Status {
    TL_ASSIGN_OR_RETURN(
        SqliteDb::Statement * insert,
        db.Prepare("INSERT INTO workers (id, info, state, register_time, last_heartbeat_time) "
                   "VALUES ('', ?1, ?2, ?3, ?3)"));
    {
      Query query(insert);
      query.BindBlob(1, info.SerializeAsString())
          .Bind(2, static_cast<int64_t>(v1::Worker::IDLE))
          .Bind(3, ToMicrosColumn(now));
      TL_RETURN_IF_ERROR(query.Run());
    }
    const int64_t num = db.LastInsertRowId();
    const std::string worker_id = absl::StrCat("w-", num);
    TL_ASSIGN_OR_RETURN(SqliteDb::Statement * name,
                        db.Prepare("UPDATE workers SET id = ?2 WHERE num = ?1"));
    {
      Query query(name);
      query.Bind(1, num).Bind(2, worker_id);
      TL_RETURN_IF_ERROR(query.Run());
    }
    TL_ASSIGN_OR_RETURN(SqliteDb::Statement * select,
                        db.Prepare("SELECT " TL_WORKER_COLUMNS " FROM workers WHERE id = ?1"));
    Query query(select);
    query.Bind(1, worker_id);
    TL_ASSIGN_OR_RETURN(const bool found, query.Step());
    if (!found) return absl::InternalError("registered worker row vanished");
    TL_ASSIGN_OR_RETURN(result, WorkerFromRow(query));
    return absl::OkStatus();
  }));
  return result;
}

absl::Status JobStore::TouchWorker(const std::string& worker_id) {
  return StartTouchWorker(worker_id).Wait().status();
}

PendingStatus JobStore::StartTouchWorker(const std::string& worker_id) {
  const absl::Time now = clock_.Now();
  std::shared_ptr<GroupCommit::Ticket> ticket =
      commit_.Enqueue([worker_id, now](SqliteDb& db) -> absl::Status {
        TL_ASSIGN_OR_RETURN(auto worker, LoadWorkerInfo(db, worker_id));
        TL_RETURN_IF_ERROR(RequireActiveWorker(worker_id, worker.second));
        TL_ASSIGN_OR_RETURN(
            SqliteDb::Statement * touch,
            db.Prepare("UPDATE workers SET last_heartbeat_time = ?2 WHERE id = ?1"));
        Query query(touch);
        query.Bind(1, worker_id).Bind(2, ToMicrosColumn(now));
        return query.Run();
      });
  return PendingStatus(commit_, std::move(ticket), std::make_shared<std::monostate>());
}

absl::Status JobStore::SetWorkerGone(const std::string& worker_id, v1::Worker::State state) {
  if (state != v1::Worker::LOST && state != v1::Worker::GONE) {
    return absl::InvalidArgumentError(
        absl::StrCat("worker state must be LOST or GONE, got ", v1::Worker::State_Name(state)));
  }
  return Write([&](SqliteDb& db) -> absl::Status {
    TL_RETURN_IF_ERROR(LoadWorkerInfo(db, worker_id).status());
    TL_ASSIGN_OR_RETURN(SqliteDb::Statement * set,
                        db.Prepare("UPDATE workers SET state = ?2 WHERE id = ?1"));
    Query query(set);
    query.Bind(1, worker_id).Bind(2, static_cast<int64_t>(state));
    return query.Run();
  });
}

absl::StatusOr<v1::Job> JobStore::GetJob(const std::string& job_id) {
  TL_ASSIGN_OR_RETURN(const int64_t id, RequireJobId(job_id));
  v1::Job result;
  int64_t log_seq = 0;
  TL_RETURN_IF_ERROR(Read([&](SqliteDb& db) -> absl::Status {
    TL_ASSIGN_OR_RETURN(result, LoadJob(db, id, nullptr, &log_seq));
    return absl::OkStatus();
  }));
  latest_.Apply(log_seq, result);
  return result;
}

absl::StatusOr<JobPage> JobStore::ListJobs(const JobQuery& query_spec) {
  int64_t state_mask = 0;
  for (const v1::Job::State state : query_spec.states) state_mask |= int64_t{1} << state;
  if (state_mask == 0) state_mask = (int64_t{1} << 16) - 1;  // every state
  int64_t offset = 0;
  if (!query_spec.page_token.empty() &&
      (!absl::SimpleAtoi(query_spec.page_token, &offset) || offset < 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "page_token: not a token from this server, got \"", query_spec.page_token, "\""));
  }
  const int page_size = query_spec.page_size;
  JobPage page;
  bool more = false;  // rows follow the page
  TL_RETURN_IF_ERROR(Read([&](SqliteDb& db) -> absl::Status {
    // Dispatch order in three segments, each read along its own index so that a page costs
    // about page_size rows whatever the history: QUEUED by priority then submit order
    // (jobs_by_dispatch), RUNNING by start (jobs_by_start), then finished jobs newest first
    // (jobs_by_end; only finished jobs have an end time), or the jobs_by_tenant_* ones. The offset
    // of the page token skips whole segments by counting them. One row more than the page tells
    // whether another follows. One tenant's jobs are read along the tenant's own indexes
    // (jobs_by_tenant_*), every tenant's along the global ones; the two spellings bind the same
    // parameters (?2 = tenant).
    const bool one_tenant = !query_spec.tenant.empty();
    TL_ASSIGN_OR_RETURN(
        SqliteDb::Statement * queued,
        one_tenant ? db.Prepare("SELECT " TL_JOB_COLUMNS " FROM jobs WHERE tenant = ?2 AND "
                                "state = ?1 ORDER BY priority DESC, id LIMIT ?3 OFFSET ?4")
                   : db.Prepare("SELECT " TL_JOB_COLUMNS " FROM jobs WHERE ?2 = '' AND "
                                "state = ?1 ORDER BY priority DESC, id LIMIT ?3 OFFSET ?4"));
    TL_ASSIGN_OR_RETURN(
        SqliteDb::Statement * running,
        one_tenant
            ? db.Prepare("SELECT " TL_JOB_COLUMNS " FROM jobs WHERE tenant = ?2 AND "
                         "state = ?1 AND start_time IS NOT NULL ORDER BY start_time, id LIMIT ?3 "
                         "OFFSET ?4")
            : db.Prepare("SELECT " TL_JOB_COLUMNS " FROM jobs WHERE ?2 = '' AND "
                         "state = ?1 AND start_time IS NOT NULL ORDER BY start_time, id LIMIT ?3 "
                         "OFFSET ?4"));
    TL_ASSIGN_OR_RETURN(
        SqliteDb::Statement * finished,
        one_tenant
            ? db.Prepare("SELECT " TL_JOB_COLUMNS " FROM jobs WHERE tenant = ?4 AND "
                         "state != ?1 AND state != ?2 AND ((?3 >> state) & 1) = 1 AND "
                         "end_time IS NOT NULL ORDER BY end_time DESC, id DESC LIMIT ?5 OFFSET ?6")
            : db.Prepare(
                  "SELECT " TL_JOB_COLUMNS " FROM jobs WHERE ?4 = '' AND "
                  "state != ?1 AND state != ?2 AND ((?3 >> state) & 1) = 1 AND "
                  "end_time IS NOT NULL ORDER BY end_time DESC, id DESC LIMIT ?5 OFFSET ?6"));
    TL_ASSIGN_OR_RETURN(
        SqliteDb::Statement * count,
        one_tenant ? db.Prepare("SELECT COUNT(*) FROM jobs WHERE tenant = ?2 AND state = ?1")
                   : db.Prepare("SELECT COUNT(*) FROM jobs WHERE ?2 = '' AND state = ?1"));
    const int64_t kQueued = v1::Job::QUEUED;
    const int64_t kRunning = v1::Job::RUNNING;
    int64_t skip = offset;
    int64_t bytes = 0;
    // Appends `query`'s rows to the page; false once the page is full (`more` then says so).
    auto take = [&](Query& query) -> absl::StatusOr<bool> {
      while (true) {
        TL_ASSIGN_OR_RETURN(const bool row, query.Step());
        if (!row) return true;
        if (static_cast<int>(page.jobs.size()) == page_size) {
          more = true;
          return false;
        }
        TL_ASSIGN_OR_RETURN(v1::Job job, JobFromRow(query));
        latest_.Apply(LogSeqFromRow(query), job);
        // As a `repeated Job jobs = 1` entry: the message, its length and its tag.
        const size_t size = job.ByteSizeLong();
        const int64_t job_bytes = static_cast<int64_t>(
            1 + google::protobuf::io::CodedOutputStream::VarintSize64(size) + size);
        if (!page.jobs.empty() && bytes + job_bytes > query_spec.max_bytes) {
          more = true;
          return false;
        }
        bytes += job_bytes;
        page.jobs.push_back(std::move(job));
      }
    };
    // The rows still wanted: the rest of the page and one more.
    auto wanted = [&] { return static_cast<int64_t>(page_size - page.jobs.size()) + 1; };
    for (const int64_t state : {kQueued, kRunning}) {
      if (((state_mask >> state) & 1) == 0) continue;
      if (skip > 0) {
        Query counted(count);
        counted.Bind(1, state).Bind(2, query_spec.tenant);
        TL_ASSIGN_OR_RETURN(const bool row, counted.Step());
        const int64_t in_segment = row ? counted.Int(0) : 0;
        if (in_segment <= skip) {
          skip -= in_segment;
          continue;
        }
      }
      Query query(state == kQueued ? queued : running);
      query.Bind(1, state).Bind(2, query_spec.tenant).Bind(3, wanted()).Bind(4, skip);
      skip = 0;
      TL_ASSIGN_OR_RETURN(const bool room, take(query));
      if (!room) return absl::OkStatus();
    }
    Query query(finished);
    query.Bind(1, kQueued)
        .Bind(2, kRunning)
        .Bind(3, state_mask)
        .Bind(4, query_spec.tenant)
        .Bind(5, wanted())
        .Bind(6, skip);
    return take(query).status();
  }));
  if (more) page.next_page_token = absl::StrCat(offset + static_cast<int64_t>(page.jobs.size()));
  return page;
}

absl::StatusOr<std::vector<v1::JobEvent>> JobStore::ListJobEvents(const std::string& job_id) {
  TL_ASSIGN_OR_RETURN(const int64_t id, RequireJobId(job_id));
  std::vector<v1::JobEvent> events;
  TL_RETURN_IF_ERROR(Read([&](SqliteDb& db) {
    return ForEachRowOfJob(db, id,
                           "SELECT " TL_EVENT_COLUMNS " FROM events WHERE job_id = ?1 ORDER BY seq",
                           [&](Query& row) {
                             events.push_back(EventFromRow(row));
                             return absl::OkStatus();
                           });
  }));
  return events;
}

absl::StatusOr<std::vector<v1::AttemptCost>> JobStore::ListAttempts(const std::string& job_id) {
  TL_ASSIGN_OR_RETURN(const int64_t id, RequireJobId(job_id));
  std::vector<v1::AttemptCost> attempts;
  int64_t log_seq = 0;
  TL_RETURN_IF_ERROR(Read([&](SqliteDb& db) -> absl::Status {
    TL_RETURN_IF_ERROR(LoadJob(db, id, nullptr, &log_seq).status());
    TL_ASSIGN_OR_RETURN(SqliteDb::Statement * select,
                        db.Prepare("SELECT " TL_ATTEMPT_COLUMNS
                                   " FROM attempts WHERE job_id = ?1 ORDER BY attempt"));
    Query query(select);
    query.Bind(1, id);
    while (true) {
      TL_ASSIGN_OR_RETURN(const bool row, query.Step());
      if (!row) return absl::OkStatus();
      attempts.push_back(AttemptFromRow(query));
    }
  }));
  latest_.Apply(id, log_seq, absl::MakeSpan(attempts));
  return attempts;
}

absl::StatusOr<JobSubmitFacts> JobStore::GetSubmitFacts(const std::string& job_id) {
  TL_ASSIGN_OR_RETURN(const int64_t id, RequireJobId(job_id));
  JobSubmitFacts facts;
  TL_RETURN_IF_ERROR(Read([&](SqliteDb& db) -> absl::Status {
    TL_ASSIGN_OR_RETURN(SqliteDb::Statement * select,
                        db.Prepare("SELECT estimate, base_model FROM jobs WHERE id = ?1"));
    Query query(select);
    query.Bind(1, id);
    TL_ASSIGN_OR_RETURN(const bool found, query.Step());
    if (!found) return JobNotFound(job_id);
    const std::string what = absl::StrCat("job ", id);
    TL_RETURN_IF_ERROR(ParseStoredMessage(query.Text(0), what + " estimate", facts.estimate));
    return ParseStoredMessage(query.Text(1), what + " base model", facts.base_model);
  }));
  return facts;
}

absl::StatusOr<std::vector<v1::Progress>> JobStore::ListProgressHistory(const std::string& job_id) {
  TL_ASSIGN_OR_RETURN(const int64_t id, RequireJobId(job_id));
  std::vector<v1::Progress> points;
  if (latest_.Has(id)) {
    // A running job's history points are made when its logged reports fold.
    TL_RETURN_IF_ERROR(Write([&](SqliteDb& db) { return log_.Fold(db, commit_, id); }));
  }
  TL_RETURN_IF_ERROR(Read([&](SqliteDb& db) {
    return ForEachRowOfJob(
        db, id, "SELECT progress FROM progress_points WHERE job_id = ?1 ORDER BY ordinal",
        [&](Query& row) {
          return ParseStoredMessage(row.Text(0), absl::StrCat("job ", id, " progress point"),
                                    points.emplace_back());
        });
  }));
  return points;
}

absl::StatusOr<std::vector<AttemptRecord>> JobStore::ListRunningAttempts() {
  std::vector<AttemptRecord> records;
  TL_RETURN_IF_ERROR(Read([&](SqliteDb& db) -> absl::Status {
    TL_ASSIGN_OR_RETURN(
        SqliteDb::Statement * select,
        db.Prepare("SELECT " TL_JOB_COLUMNS ", " TL_ATTEMPT_COLUMNS
                   ", attempts.gang, attempts.rendezvous_slot"
                   " FROM jobs JOIN attempts ON attempts.job_id = jobs.id AND "
                   "attempts.attempt = jobs.attempts WHERE jobs.state = ?1 ORDER BY jobs.id"));
    Query query(select);
    query.Bind(1, static_cast<int64_t>(v1::Job::RUNNING));
    while (true) {
      TL_ASSIGN_OR_RETURN(const bool row, query.Step());
      if (!row) return absl::OkStatus();
      AttemptRecord& record = records.emplace_back();
      TL_ASSIGN_OR_RETURN(record.job, JobFromRow(query));
      record.budget = BudgetStateFromRow(query);
      record.attempt = AttemptFromRow(query, TL_JOB_COLUMN_COUNT);
      latest_.Apply(LogSeqFromRow(query), record.job);
      latest_.Apply(query.Int(0), LogSeqFromRow(query), record.attempt);
      constexpr int kPlacement = TL_JOB_COLUMN_COUNT + TL_ATTEMPT_COLUMN_COUNT;
      TL_ASSIGN_OR_RETURN(record.placement.members, GangFromColumn(query.Text(kPlacement)));
      record.placement.rendezvous_slot = static_cast<int>(query.Int(kPlacement + 1));
    }
  }));
  return records;
}

absl::StatusOr<UnschedulableJobs> JobStore::FindUnschedulable(int max_worker_gpus, int limit) {
  UnschedulableJobs found;
  TL_RETURN_IF_ERROR(Read([&](SqliteDb& db) -> absl::Status {
    TL_ASSIGN_OR_RETURN(SqliteDb::Statement * select,
                        db.Prepare("SELECT id, gpus FROM jobs WHERE state = ?1 AND gpus > ?2 "
                                   "ORDER BY id"));
    Query query(select);
    query.Bind(1, static_cast<int64_t>(v1::Job::QUEUED)).Bind(2, max_worker_gpus);
    while (true) {
      TL_ASSIGN_OR_RETURN(const bool row, query.Step());
      if (!row) return absl::OkStatus();
      ++found.count;
      if (static_cast<int>(found.jobs.size()) < limit) {
        found.jobs.push_back({absl::StrCat(query.Int(0)), static_cast<int>(query.Int(1))});
      }
    }
  }));
  return found;
}

absl::StatusOr<std::optional<JobUpdate>> JobStore::RecordWaiting(const std::string& job_id,
                                                                 const std::string& message) {
  bool changed = false;
  TL_ASSIGN_OR_RETURN(
      JobUpdate update,
      Transition(
          job_id, std::nullopt,
          [&](const TransitionContext& t) -> absl::Status {
            if (t.before.state() != v1::Job::QUEUED || t.before.message() == message) {
              return absl::OkStatus();
            }
            changed = true;
            TL_ASSIGN_OR_RETURN(SqliteDb::Statement * set,
                                t.db.Prepare("UPDATE jobs SET message = ?2 WHERE id = ?1"));
            Query query(set);
            query.Bind(1, t.id).Bind(2, message);
            return query.Run();
          },
          [&](const v1::Job&, const v1::Job& after) {
            std::vector<v1::JobEvent> events;
            if (changed) {
              events.push_back(EventFor(after, v1::JobEvent::WAITING));
              events.back().set_message(message);
            }
            return events;
          }));
  if (!changed) return std::nullopt;
  return update;
}

absl::StatusOr<std::map<std::string, int64_t>> JobStore::CountJobsByState() {
  std::map<std::string, int64_t> counts;
  TL_RETURN_IF_ERROR(Read([&](SqliteDb& db) -> absl::Status {
    TL_ASSIGN_OR_RETURN(SqliteDb::Statement * select,
                        db.Prepare("SELECT state, COUNT(*) FROM jobs GROUP BY state"));
    Query query(select);
    while (true) {
      TL_ASSIGN_OR_RETURN(const bool row, query.Step());
      if (!row) return absl::OkStatus();
      counts[StateName(static_cast<v1::Job::State>(query.Int(0)))] = query.Int(1);
    }
  }));
  return counts;
}

absl::StatusOr<v1::Worker> JobStore::GetWorker(const std::string& worker_id) {
  v1::Worker result;
  TL_RETURN_IF_ERROR(Read([&](SqliteDb& db) -> absl::Status {
    TL_ASSIGN_OR_RETURN(SqliteDb::Statement * select,
                        db.Prepare("SELECT " TL_WORKER_COLUMNS " FROM workers WHERE id = ?1"));
    Query query(select);
    query.Bind(1, worker_id);
    TL_ASSIGN_OR_RETURN(const bool found, query.Step());
    if (!found) return absl::NotFoundError(WorkerNotFoundMessage(worker_id));
    TL_ASSIGN_OR_RETURN(result, WorkerFromRow(query));
    return absl::OkStatus();
  }));
  latest_.Apply(result);
  return result;
}

absl::StatusOr<std::vector<v1::Worker>> JobStore::ListWorkers(std::vector<v1::WorkerInfo>* infos) {
  std::vector<v1::Worker> workers;
  TL_RETURN_IF_ERROR(Read([&](SqliteDb& db) -> absl::Status {
    TL_ASSIGN_OR_RETURN(SqliteDb::Statement * select,
                        db.Prepare("SELECT " TL_WORKER_COLUMNS " FROM workers ORDER BY num"));
    Query query(select);
    while (true) {
      TL_ASSIGN_OR_RETURN(const bool row, query.Step());
      if (!row) return absl::OkStatus();
      TL_ASSIGN_OR_RETURN(
          workers.emplace_back(),
          WorkerFromRow(query, 0, infos == nullptr ? nullptr : &infos->emplace_back()));
    }
  }));
  for (v1::Worker& worker : workers) latest_.Apply(worker);
  return workers;
}

absl::StatusOr<std::vector<SucceededRun>> JobStore::ListSucceededRuns(int limit) {
  std::vector<SucceededRun> runs;
  TL_RETURN_IF_ERROR(Read([&](SqliteDb& db) -> absl::Status {
    // One row per attempt of the newest `limit` jobs; a job's rows are consecutive. The jobs
    // are read newest first along jobs_by_end until `limit` match: left to itself, SQLite reads
    // every SUCCEEDED job by state and sorts them all.
    TL_ASSIGN_OR_RETURN(
        SqliteDb::Statement * select,
        db.Prepare("SELECT newest.id, newest.estimate, newest.progress, attempts.seconds, "
                   "workers.info FROM (SELECT id, estimate, progress, end_time FROM jobs "
                   "INDEXED BY jobs_by_end "
                   "WHERE state = ?1 AND length(estimate) > 0 AND end_time IS NOT NULL "
                   "ORDER BY end_time DESC, id DESC LIMIT ?2) AS newest "
                   "JOIN attempts ON attempts.job_id = newest.id "
                   "LEFT JOIN workers ON workers.id = attempts.worker_id "
                   "ORDER BY newest.end_time DESC, newest.id DESC, attempts.attempt"));
    Query query(select);
    query.Bind(1, static_cast<int64_t>(v1::Job::SUCCEEDED)).Bind(2, limit);
    while (true) {
      TL_ASSIGN_OR_RETURN(const bool row, query.Step());
      if (!row) return absl::OkStatus();
      const std::string job_id = absl::StrCat(query.Int(0));
      if (runs.empty() || runs.back().job_id != job_id) {
        SucceededRun& run = runs.emplace_back();
        run.job_id = job_id;
        v1::JobEstimate estimate;
        TL_RETURN_IF_ERROR(
            ParseStoredMessage(query.Text(1), absl::StrCat("job ", job_id, " estimate"), estimate));
        v1::Progress progress;
        TL_RETURN_IF_ERROR(
            ParseStoredMessage(query.Text(2), absl::StrCat("job ", job_id, " progress"), progress));
        run.model_shape = estimate.model_shape();
        run.scoring_tokens = estimate.scoring_tokens();
        run.tokens = progress.tokens();
      }
      SucceededRun::Attempt& attempt = runs.back().attempts.emplace_back();
      attempt.seconds = query.Double(3);
      if (!query.IsNull(4)) {
        v1::WorkerInfo info;
        TL_RETURN_IF_ERROR(
            ParseStoredMessage(query.Text(4), absl::StrCat("job ", job_id, " worker info"), info));
        attempt.accelerator = info.accelerator();
      }
    }
  }));
  return runs;
}

absl::StatusOr<std::string> JobStore::ServerKey(const std::string& name, size_t bytes) {
  std::string key;
  TL_RETURN_IF_ERROR(Write([&](SqliteDb& db) -> absl::Status {
    TL_ASSIGN_OR_RETURN(SqliteDb::Statement * select,
                        db.Prepare("SELECT key FROM server_keys WHERE name = ?1"));
    {
      Query query(select);
      query.Bind(1, name);
      TL_ASSIGN_OR_RETURN(const bool found, query.Step());
      if (found) {
        key = query.Text(0);
        if (key.size() != bytes) {
          return absl::DataLossError(
              absl::StrCat("server key \"", name, "\" has ", key.size(), " bytes, want ", bytes));
        }
        return absl::OkStatus();
      }
    }
    TL_ASSIGN_OR_RETURN(key, RandomBytes(bytes));
    TL_ASSIGN_OR_RETURN(SqliteDb::Statement * insert,
                        db.Prepare("INSERT INTO server_keys (name, key) VALUES (?1, ?2)"));
    Query query(insert);
    query.Bind(1, name).BindBlob(2, key);
    return query.Run();
  }));
  return key;
}

absl::StatusOr<int> JobStore::SchemaVersion() {
  int version = 0;
  TL_RETURN_IF_ERROR(Read([&](SqliteDb& db) -> absl::Status {
    TL_ASSIGN_OR_RETURN(const int64_t value, db.QueryInt("PRAGMA user_version"));
    version = static_cast<int>(value);
    return absl::OkStatus();
  }));
  return version;
}

}  // namespace tuneledger
