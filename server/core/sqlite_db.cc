#include "server/core/sqlite_db.h"

#include <sqlite3.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace tuneledger {
namespace {

absl::Status SqliteError(sqlite3* db, int code, absl::string_view what) {
  const char* message = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(code);
  const std::string text = absl::StrCat("sqlite: ", what, ": ", message, " (", code, ")");
  switch (code & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(text);  // another process holds the lock: retry can work
    case SQLITE_CONSTRAINT:
      return absl::AlreadyExistsError(text);
    case SQLITE_FULL:
      return absl::ResourceExhaustedError(text);
    default:
      return absl::InternalError(text);
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<SqliteDb>> SqliteDb::Open(const std::string& path) {
  sqlite3* db = nullptr;
  const int code = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (code != SQLITE_OK) {
    absl::Status status = SqliteError(db, code, absl::StrCat("open \"", path, "\""));
    sqlite3_close(db);
    return status;
  }
  sqlite3_extended_result_codes(db, 1);
  return std::unique_ptr<SqliteDb>(new SqliteDb(db));
}

SqliteDb::~SqliteDb() {
  statements_.clear();  // finalize before closing
  sqlite3_close(db_);
}

absl::Status SqliteDb::Exec(const char* sql) {
  char* error = nullptr;
  const int code = sqlite3_exec(db_, sql, nullptr, nullptr, &error);
  if (code == SQLITE_OK) return absl::OkStatus();
  absl::Status status = SqliteError(db_, code, sql);
  sqlite3_free(error);
  return status;
}

absl::Status SqliteDb::ExecCached(const char* sql) {
  TL_ASSIGN_OR_RETURN(Statement * statement, Prepare(sql));
  return Query(statement).Run();
}

absl::StatusOr<int64_t> SqliteDb::QueryInt(const char* sql) {
  sqlite3_stmt* stmt = nullptr;
  int code = sqlite3_prepare_v2(db_, sql, -1, &stmt, nullptr);
  if (code != SQLITE_OK) return SqliteError(db_, code, sql);
  code = sqlite3_step(stmt);
  const int64_t value = code == SQLITE_ROW ? sqlite3_column_int64(stmt, 0) : 0;
  sqlite3_finalize(stmt);
  if (code != SQLITE_ROW) return SqliteError(db_, code, sql);
  return value;
}

absl::StatusOr<SqliteDb::Statement*> SqliteDb::Prepare(const char* sql) {
  auto it = statements_.find(sql);
  if (it != statements_.end()) return it->second.get();
  sqlite3_stmt* stmt = nullptr;
  const int code = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (code != SQLITE_OK) return SqliteError(db_, code, absl::StrCat("prepare ", sql));
  auto statement = std::make_unique<Statement>(db_, stmt, sql);
  Statement* raw = statement.get();
  statements_.emplace(sql, std::move(statement));
  return raw;
}

void SqliteDb::SetBusyTimeout(absl::Duration timeout) {
  sqlite3_busy_timeout(db_, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
}

int64_t SqliteDb::LastInsertRowId() const { return sqlite3_last_insert_rowid(db_); }

int SqliteDb::Changes() const { return sqlite3_changes(db_); }

void SqliteDb::OnRowChange(std::function<void(std::string_view table, int64_t rowid)> on_change) {
  on_row_change_ = std::move(on_change);
  if (!on_row_change_) {
    sqlite3_update_hook(db_, nullptr, nullptr);
    return;
  }
  sqlite3_update_hook(
      db_,
      [](void* self, int /*operation*/, const char* /*database*/, const char* table,
         sqlite3_int64 rowid) {
        static_cast<SqliteDb*>(self)->on_row_change_(table, static_cast<int64_t>(rowid));
      },
      this);
}

SqliteDb::Statement::~Statement() { sqlite3_finalize(stmt_); }

Query::~Query() {
  sqlite3_reset(statement_->raw());
  sqlite3_clear_bindings(statement_->raw());
}

absl::Status Query::BindError(int index) const {
  return SqliteError(statement_->db(), sqlite3_errcode(statement_->db()),
                     absl::StrCat("bind ?", index, " of ", statement_->sql()));
}

Query& Query::Bind(int index, int64_t value) {
  if (sqlite3_bind_int64(statement_->raw(), index, value) != SQLITE_OK && bind_status_.ok()) {
    bind_status_ = BindError(index);
  }
  return *this;
}

Query& Query::Bind(int index, double value) {
  if (sqlite3_bind_double(statement_->raw(), index, value) != SQLITE_OK && bind_status_.ok()) {
    bind_status_ = BindError(index);
  }
  return *this;
}

Query& Query::Bind(int index, std::string_view text) {
  if (sqlite3_bind_text(statement_->raw(), index, text.data(), static_cast<int>(text.size()),
                        SQLITE_TRANSIENT) != SQLITE_OK &&
      bind_status_.ok()) {
    bind_status_ = BindError(index);
  }
  return *this;
}

Query& Query::BindBlob(int index, std::string_view bytes) {
  if (sqlite3_bind_blob(statement_->raw(), index, bytes.data(), static_cast<int>(bytes.size()),
                        SQLITE_TRANSIENT) != SQLITE_OK &&
      bind_status_.ok()) {
    bind_status_ = BindError(index);
  }
  return *this;
}

Query& Query::BindNull(int index) {
  if (sqlite3_bind_null(statement_->raw(), index) != SQLITE_OK && bind_status_.ok()) {
    bind_status_ = BindError(index);
  }
  return *this;
}

absl::StatusOr<bool> Query::Step() {
  TL_RETURN_IF_ERROR(bind_status_);
  const int code = sqlite3_step(statement_->raw());
  if (code == SQLITE_ROW) return true;
  if (code == SQLITE_DONE) return false;
  return SqliteError(statement_->db(), code, statement_->sql());
}

absl::Status Query::Run() {
  while (true) {
    TL_ASSIGN_OR_RETURN(const bool row, Step());
    if (!row) return absl::OkStatus();
  }
}

bool Query::IsNull(int column) const {
  return sqlite3_column_type(statement_->raw(), column) == SQLITE_NULL;
}

int64_t Query::Int(int column) const { return sqlite3_column_int64(statement_->raw(), column); }

double Query::Double(int column) const { return sqlite3_column_double(statement_->raw(), column); }

std::string Query::Text(int column) const {
  const void* data = sqlite3_column_blob(statement_->raw(), column);
  const int size = sqlite3_column_bytes(statement_->raw(), column);
  return data == nullptr ? std::string() : std::string(static_cast<const char*>(data), size);
}

std::optional<int64_t> Query::OptionalInt(int column) const {
  if (IsNull(column)) return std::nullopt;
  return Int(column);
}

}  // namespace tuneledger
