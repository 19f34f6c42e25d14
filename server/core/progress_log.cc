#include "server/core/progress_log.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "server/core/group_commit.h"
#include "server/core/job_store_rows.h"
#include "server/core/sqlite_db.h"

namespace tuneledger {

namespace {

// How long a retired entry stays for reads whose snapshot predates the job's last fold; reads
// last milliseconds.
constexpr absl::Duration kRetiredKept = absl::Seconds(10);

// Appends a downsampled history point at `ordinal` (the job's count of progress reports before
// this one): every `stride`-th report is kept, and the stride doubles (dropping every other kept
// point) whenever the job would hold more than `max_points`; returns the stride after it. The
// kept points are exactly the ordinals up to `ordinal` that the stride divides (only this
// function inserts or thins them), so their number follows from the two without a COUNT.
absl::StatusOr<int64_t> AppendProgressPoint(SqliteDb& db, int64_t job_id,
                                            const std::string& progress, int64_t ordinal,
                                            int64_t stride, int max_points) {
  if (ordinal % stride != 0) return stride;
  TL_ASSIGN_OR_RETURN(
      SqliteDb::Statement * insert,
      db.Prepare("INSERT INTO progress_points (job_id, ordinal, progress) VALUES (?1, ?2, ?3)"));
  {
    Query query(insert);
    query.Bind(1, job_id).Bind(2, ordinal).BindBlob(3, progress);
    TL_RETURN_IF_ERROR(query.Run());
  }
  const int64_t points = ordinal / stride + 1;
  if (points <= max_points) return stride;
  const int64_t wider = stride * 2;
  TL_ASSIGN_OR_RETURN(
      SqliteDb::Statement * thin,
      db.Prepare("DELETE FROM progress_points WHERE job_id = ?1 AND ordinal % ?2 != 0"));
  {
    Query query(thin);
    query.Bind(1, job_id).Bind(2, wider);
    TL_RETURN_IF_ERROR(query.Run());
  }
  TL_ASSIGN_OR_RETURN(SqliteDb::Statement * widen,
                      db.Prepare("UPDATE jobs SET history_stride = ?2 WHERE id = ?1"));
  Query query(widen);
  query.Bind(1, job_id).Bind(2, wider);
  TL_RETURN_IF_ERROR(query.Run());
  return wider;
}

}  // namespace

absl::Status ProgressLog::Load(SqliteDb& db) {
  waiting_.clear();
  // A row at or below its job's log_seq is folded already (a trim deletes it later).
  TL_ASSIGN_OR_RETURN(
      SqliteDb::Statement * select,
      db.Prepare("SELECT progress_log.seq, progress_log.job_id, progress_log.attempt, "
                 "progress_log.seconds, progress_log.attempt_gpu_hours, progress_log.usd, "
                 "progress_log.accrued_usd, progress_log.gpu_hours, progress_log.projected_usd, "
                 "progress_log.rate_usd_per_hour, progress_log.progress, "
                 "progress_log.worker_contact FROM progress_log JOIN "
                 "jobs ON jobs.id = progress_log.job_id WHERE progress_log.seq > jobs.log_seq "
                 "ORDER BY progress_log.seq"));
  Query query(select);
  while (true) {
    TL_ASSIGN_OR_RETURN(const bool row, query.Step());
    if (!row) return absl::OkStatus();
    auto report = std::make_shared<LoggedReport>();
    report->attempt = static_cast<int>(query.Int(2));
    report->bill.seconds = query.Double(3);
    report->bill.gpu_hours = query.Double(4);
    report->bill.usd = query.Double(5);
    report->bill.job_cost.set_accrued_usd(query.Double(6));
    report->bill.job_cost.set_gpu_hours(query.Double(7));
    report->bill.job_cost.set_projected_usd(query.Double(8));
    report->bill.job_cost.set_rate_usd_per_hour(query.Double(9));
    if (!query.IsNull(10)) report->progress = query.Text(10);
    if (!query.IsNull(11)) report->worker_contact = FromMicrosColumn(query.Int(11));
    waiting_[query.Int(1)].push_back(Row{query.Int(0), std::move(report)});
  }
}

absl::StatusOr<int64_t> ProgressLog::Append(SqliteDb& db, GroupCommit& commit, int64_t job_id,
                                            LoggedReport report) {
  TL_ASSIGN_OR_RETURN(
      SqliteDb::Statement * insert,
      db.Prepare("INSERT INTO progress_log (job_id, attempt, seconds, attempt_gpu_hours, usd, "
                 "accrued_usd, gpu_hours, projected_usd, rate_usd_per_hour, progress, "
                 "worker_contact) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"));
  {
    Query query(insert);
    query.Bind(1, job_id)
        .Bind(2, report.attempt)
        .Bind(3, report.bill.seconds)
        .Bind(4, report.bill.gpu_hours)
        .Bind(5, report.bill.usd)
        .Bind(6, report.bill.job_cost.accrued_usd())
        .Bind(7, report.bill.job_cost.gpu_hours())
        .Bind(8, report.bill.job_cost.projected_usd())
        .Bind(9, report.bill.job_cost.rate_usd_per_hour());
    if (report.progress.has_value()) {
      query.BindBlob(10, *report.progress);
    } else {
      query.BindNull(10);
    }
    if (report.worker_contact.has_value()) {
      query.Bind(11, ToMicrosColumn(*report.worker_contact));
    } else {
      query.BindNull(11);
    }
    TL_RETURN_IF_ERROR(query.Run());
  }
  const int64_t seq = db.LastInsertRowId();
  waiting_[job_id].push_back(Row{seq, std::make_shared<const LoggedReport>(std::move(report))});
  commit.OnRollback([this, job_id] {
    auto it = waiting_.find(job_id);
    if (it == waiting_.end()) return;
    it->second.pop_back();
    if (it->second.empty()) waiting_.erase(it);
  });
  if (seq % kTrimEvery == 0) TL_RETURN_IF_ERROR(Trim(db));
  return seq;
}

absl::Status ProgressLog::Trim(SqliteDb& db) {
  // Every row below the oldest one still waiting is folded. A fold leaves its rows in place:
  // a job's reports lie a thousand rows apart when a thousand jobs report, and deleting them one
  // job at a time would rewrite most of the log's pages; one range here rewrites only its own.
  int64_t oldest = std::numeric_limits<int64_t>::max();  // none waiting: every row
  for (const auto& [job_id, rows] : waiting_) oldest = std::min(oldest, rows.front().seq);
  TL_ASSIGN_OR_RETURN(SqliteDb::Statement * trim,
                      db.Prepare("DELETE FROM progress_log WHERE seq < ?1"));
  Query query(trim);
  query.Bind(1, oldest);
  return query.Run();
}

absl::Status ProgressLog::Fold(SqliteDb& db, GroupCommit& commit, int64_t job_id) {
  auto it = waiting_.find(job_id);
  if (it == waiting_.end()) return absl::OkStatus();
  std::vector<Row> rows = std::move(it->second);
  waiting_.erase(it);
  commit.OnRollback([this, job_id, rows] { waiting_[job_id] = rows; });

  TL_ASSIGN_OR_RETURN(SqliteDb::Statement * history,
                      db.Prepare("SELECT history_next, history_stride FROM jobs WHERE id = ?1"));
  int64_t next = 0;
  int64_t stride = 1;
  {
    Query query(history);
    query.Bind(1, job_id);
    TL_ASSIGN_OR_RETURN(const bool found, query.Step());
    if (!found) {
      return absl::InternalError(
          absl::StrCat("the progress log has rows of job ", job_id, ", which is not stored"));
    }
    next = query.Int(0);
    stride = query.Int(1);
  }
  const std::string* progress = nullptr;  // the latest one
  for (const Row& row : rows) {
    if (!row.report->progress.has_value()) continue;
    progress = &*row.report->progress;
    TL_ASSIGN_OR_RETURN(stride,
                        AppendProgressPoint(db, job_id, *progress, next, stride, max_points_));
    ++next;
  }
  const LoggedReport& last = *rows.back().report;
  const v1::CostSummary& cost = last.bill.job_cost;
  TL_ASSIGN_OR_RETURN(
      SqliteDb::Statement * job,
      db.Prepare("UPDATE jobs SET accrued_usd = ?2, gpu_hours = ?3, projected_usd = ?4, "
                 "rate_usd_per_hour = ?5, progress = COALESCE(?6, progress), history_next = ?7, "
                 "log_seq = ?8 WHERE id = ?1"));
  {
    Query query(job);
    query.Bind(1, job_id)
        .Bind(2, cost.accrued_usd())
        .Bind(3, cost.gpu_hours())
        .Bind(4, cost.projected_usd())
        .Bind(5, cost.rate_usd_per_hour());
    if (progress != nullptr) {
      query.BindBlob(6, *progress);
    } else {
      query.BindNull(6);
    }
    query.Bind(7, next).Bind(8, rows.back().seq);
    TL_RETURN_IF_ERROR(query.Run());
  }
  TL_ASSIGN_OR_RETURN(SqliteDb::Statement * attempt,
                      db.Prepare("UPDATE attempts SET seconds = ?3, gpu_hours = ?4, usd = ?5 "
                                 "WHERE job_id = ?1 AND attempt = ?2"));
  {
    Query query(attempt);
    query.Bind(1, job_id)
        .Bind(2, last.attempt)
        .Bind(3, last.bill.seconds)
        .Bind(4, last.bill.gpu_hours)
        .Bind(5, last.bill.usd);
    TL_RETURN_IF_ERROR(query.Run());
  }
  // Each attempt's latest contact onto its worker's row (the rows are one attempt's but for
  // the rare fold across an attempt's end), never moving it back.
  std::map<int, absl::Time> contacts;  // attempt -> its latest contact
  for (const Row& row : rows) {
    if (!row.report->worker_contact.has_value()) continue;
    auto [it, added] = contacts.try_emplace(row.report->attempt, *row.report->worker_contact);
    if (!added) it->second = std::max(it->second, *row.report->worker_contact);
  }
  if (contacts.empty()) return absl::OkStatus();
  TL_ASSIGN_OR_RETURN(
      SqliteDb::Statement * touch,
      db.Prepare("UPDATE workers SET last_heartbeat_time = MAX(last_heartbeat_time, ?3) WHERE "
                 "id = (SELECT worker_id FROM attempts WHERE job_id = ?1 AND attempt = ?2)"));
  for (const auto& [number, contact] : contacts) {
    Query query(touch);
    query.Bind(1, job_id).Bind(2, number).Bind(3, ToMicrosColumn(contact));
    TL_RETURN_IF_ERROR(query.Run());
  }
  return absl::OkStatus();
}

absl::Status ProgressLog::FoldAll(SqliteDb& db, GroupCommit& commit) {
  std::vector<int64_t> jobs;
  jobs.reserve(waiting_.size());
  for (const auto& [job_id, rows] : waiting_) jobs.push_back(job_id);
  for (const int64_t job_id : jobs) TL_RETURN_IF_ERROR(Fold(db, commit, job_id));
  return Trim(db);
}

size_t ProgressLog::Waiting(int64_t job_id) const {
  auto it = waiting_.find(job_id);
  return it == waiting_.end() ? 0 : it->second.size();
}

const std::string* ProgressLog::LatestProgress(int64_t job_id) const {
  auto it = waiting_.find(job_id);
  if (it == waiting_.end()) return nullptr;
  for (auto row = it->second.rbegin(); row != it->second.rend(); ++row) {
    if (row->report->progress.has_value()) return &*row->report->progress;
  }
  return nullptr;
}

void LatestReports::Publish(int64_t job_id, std::shared_ptr<Report> report) {
  absl::MutexLock lock(&mu_);
  if (report->worker_contact.has_value()) {
    auto [it, added] = contacts_.try_emplace(report->worker_id, *report->worker_contact);
    if (!added) it->second = std::max(it->second, *report->worker_contact);
  }
  std::shared_ptr<const Report>& entry = reports_[job_id];
  if (report->progress_seq == 0 && entry != nullptr) {
    report->progress_seq = entry->progress_seq;
    report->progress = entry->progress;
  }
  entry = std::move(report);
}

void LatestReports::Retire(int64_t job_id) {
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&mu_);
  DropRetiredLocked(now);
  auto it = reports_.find(job_id);
  if (it != reports_.end()) retired_.push_back({now, job_id, it->second->seq});
}

void LatestReports::DropRetiredLocked(absl::Time now) {
  while (!retired_.empty() && now - retired_.front().time > kRetiredKept) {
    const Retired& retired = retired_.front();
    auto it = reports_.find(retired.job_id);
    if (it != reports_.end() && it->second->seq == retired.seq) reports_.erase(it);
    retired_.pop_front();
  }
}

bool LatestReports::Has(int64_t job_id) const {
  absl::MutexLock lock(&mu_);
  return reports_.contains(job_id);
}

std::shared_ptr<const LatestReports::Report> LatestReports::Find(int64_t job_id,
                                                                 int64_t log_seq) const {
  absl::MutexLock lock(&mu_);
  auto it = reports_.find(job_id);
  if (it == reports_.end() || it->second->seq <= log_seq) return nullptr;
  return it->second;
}

void LatestReports::Apply(int64_t log_seq, v1::Job& job) const {
  int64_t job_id = 0;
  if (!absl::SimpleAtoi(job.id(), &job_id)) return;
  std::shared_ptr<const Report> report = Find(job_id, log_seq);
  if (report == nullptr) return;
  if (report->progress_seq > log_seq) *job.mutable_progress() = report->progress;
  v1::CostSummary& cost = *job.mutable_cost();
  cost.set_accrued_usd(report->bill.job_cost.accrued_usd());
  cost.set_gpu_hours(report->bill.job_cost.gpu_hours());
  cost.set_projected_usd(report->bill.job_cost.projected_usd());
  cost.set_rate_usd_per_hour(report->bill.job_cost.rate_usd_per_hour());
}

void LatestReports::Apply(int64_t job_id, int64_t log_seq, v1::AttemptCost& attempt) const {
  Apply(job_id, log_seq, absl::MakeSpan(&attempt, 1));
}

void LatestReports::Apply(int64_t job_id, int64_t log_seq,
                          absl::Span<v1::AttemptCost> attempts) const {
  std::shared_ptr<const Report> report = Find(job_id, log_seq);
  if (report == nullptr) return;
  for (v1::AttemptCost& attempt : attempts) {
    if (attempt.attempt() != report->attempt) continue;
    attempt.set_seconds(report->bill.seconds);
    attempt.set_gpu_hours(report->bill.gpu_hours);
    attempt.set_usd(report->bill.usd);
  }
}

void LatestReports::Apply(v1::Worker& worker) const {
  absl::Time contact;
  {
    absl::MutexLock lock(&mu_);
    auto it = contacts_.find(worker.id());
    if (it == contacts_.end()) return;
    contact = it->second;
  }
  if (contact > FromTimestamp(worker.last_heartbeat_time())) {
    SetTimestamp(contact, *worker.mutable_last_heartbeat_time());
  }
}

}  // namespace tuneledger
