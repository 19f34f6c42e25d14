// A thin RAII layer over one SQLite connection: prepared statements only, errors as
// absl::Status naming the SQL that failed. JobStore is its only user; nothing here knows about
// jobs.
//
//   SqliteDb::Statement& insert = db.Prepare("INSERT INTO t(a, b) VALUES (?1, ?2)");
//   Query q(insert);            // resets and clears bindings when it goes out of scope
//   q.Bind(1, int64_t{7}).Bind(2, "x");
//   TL_RETURN_IF_ERROR(q.Run());
//
// Statements are prepared once (SQLITE_PREPARE_PERSISTENT) and cached by their SQL text, which
// must be a string literal: SQL is never built from values.
// Thread safety: none. One connection is used by one thread at a time; the owner holds a mutex.
#ifndef TUNELEDGER_SERVER_CORE_SQLITE_DB_H_
#define TUNELEDGER_SERVER_CORE_SQLITE_DB_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

struct sqlite3;
struct sqlite3_stmt;

namespace tuneledger {

class SqliteDb {
 public:
  class Statement;

  // Opens (creating if missing) the database file.
  static absl::StatusOr<std::unique_ptr<SqliteDb>> Open(const std::string& path);
  ~SqliteDb();
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;

  // Runs constant SQL without results (schema, pragmas): one or more statements, prepared
  // anew on each call.
  absl::Status Exec(const char* sql);
  // Runs one constant statement without results through the statement cache (`sql` a string
  // literal, as for Prepare): for BEGIN, SAVEPOINT, RELEASE and COMMIT, which the group commit
  // runs for every write (parsing them anew each time was 3% of the progress intake's CPU).
  absl::Status ExecCached(const char* sql);
  // Runs a constant query returning one integer (e.g. "PRAGMA user_version").
  absl::StatusOr<int64_t> QueryInt(const char* sql);

  // The cached statement for `sql` (a string literal), prepared on first use.
  absl::StatusOr<Statement*> Prepare(const char* sql);

  // How long a statement waits for another connection's lock before failing UNAVAILABLE.
  void SetBusyTimeout(absl::Duration timeout);

  int64_t LastInsertRowId() const;
  int Changes() const;

  // Calls `on_change(table, rowid)` for every row this connection inserts, updates or deletes in
  // a rowid table (SQLite's update hook: triggers' changes included; not what a rollback
  // undoes). One hook per connection; it must not use the connection.
  void OnRowChange(std::function<void(std::string_view table, int64_t rowid)> on_change);
  sqlite3* raw() const { return db_; }

 private:
  explicit SqliteDb(sqlite3* db) : db_(db) {}

  sqlite3* db_;
  std::map<const char*, std::unique_ptr<Statement>> statements_;  // keyed by literal address
  std::function<void(std::string_view, int64_t)> on_row_change_;
};

class SqliteDb::Statement {
 public:
  Statement(sqlite3* db, sqlite3_stmt* stmt, const char* sql) : db_(db), stmt_(stmt), sql_(sql) {}
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  sqlite3_stmt* raw() const { return stmt_; }
  sqlite3* db() const { return db_; }
  const char* sql() const { return sql_; }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_;
  const char* sql_;
};

// One use of a cached statement: bind, step, read columns. Resets the statement on destruction
// so the next user starts clean. Bind indexes and column indexes follow SQLite (1- and 0-based).
class Query {
 public:
  explicit Query(SqliteDb::Statement* statement) : statement_(statement) {}
  ~Query();
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;

  Query& Bind(int index, int64_t value);
  Query& Bind(int index, int value) { return Bind(index, static_cast<int64_t>(value)); }
  Query& Bind(int index, bool value) { return Bind(index, static_cast<int64_t>(value)); }
  Query& Bind(int index, double value);
  Query& Bind(int index, std::string_view text);
  Query& Bind(int index, const char* text) { return Bind(index, std::string_view(text)); }
  Query& Bind(int index, const std::string& text) { return Bind(index, std::string_view(text)); }
  Query& BindBlob(int index, std::string_view bytes);
  Query& BindNull(int index);
  template <typename T>
  Query& Bind(int index, const std::optional<T>& value) {
    return value.has_value() ? Bind(index, *value) : BindNull(index);
  }

  // Advances to the next row: true when a row is ready, false when done.
  absl::StatusOr<bool> Step();
  // Steps to the end, for statements that return no rows.
  absl::Status Run();

  bool IsNull(int column) const;
  int64_t Int(int column) const;
  double Double(int column) const;
  std::string Text(int column) const;  // also reads BLOBs
  std::optional<int64_t> OptionalInt(int column) const;

 private:
  absl::Status BindError(int index) const;

  SqliteDb::Statement* statement_;
  absl::Status bind_status_;  // first bind failure, reported by Step()
};

}  // namespace tuneledger

#endif  // TUNELEDGER_SERVER_CORE_SQLITE_DB_H_
