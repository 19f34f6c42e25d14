// WriterRowCache: parsed rows of one table, kept for the thread that writes them (the group
// commit's leader), so that a hot write need not read and parse the same row again.
//
//   WriterRowCache<v1::Job> jobs(*writer, commit, "jobs", load);  // load(db, id): the parsed row
//   ... inside a write:  absl::StatusOr<std::shared_ptr<const v1::Job>> job = jobs.Get(db, id);
//
//   - An entry goes when the writer's connection inserts, updates or deletes its row
//     (SqliteDb::OnRowChange: the cache takes the connection's one hook), and when a write that
//     loaded it is rolled back, since it may have read changes that the rollback undid.
//   - The connection must be the database's only writer: another connection's change is not seen.
// Thread safety: none; used only inside the writes of `commit` (its leader's thread).
#ifndef TUNELEDGER_SERVER_CORE_WRITER_ROW_CACHE_H_
#define TUNELEDGER_SERVER_CORE_WRITER_ROW_CACHE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "base/status_macros.h"
#include "server/core/group_commit.h"
#include "server/core/sqlite_db.h"

namespace tuneledger {

template <typename Row>
class WriterRowCache {
 public:
  using Loader = std::function<absl::StatusOr<Row>(SqliteDb& db, int64_t rowid)>;

  // `writer` and `commit` (whose connection `writer` is) must outlive the cache.
  WriterRowCache(SqliteDb& writer, GroupCommit& commit, std::string table, Loader load)
      : writer_(writer), commit_(commit), table_(std::move(table)), load_(std::move(load)) {
    writer_.OnRowChange([this](std::string_view table, int64_t rowid) {
      if (table == table_) rows_.erase(rowid);
    });
  }
  ~WriterRowCache() { writer_.OnRowChange(nullptr); }
  WriterRowCache(const WriterRowCache&) = delete;
  WriterRowCache& operator=(const WriterRowCache&) = delete;

  // The row as the writer reads it now (inside a write's transaction): from the cache, or
  // loaded and kept. Never changed once returned (a change of the row makes a new one), so a
  // caller may keep it, and copy it on another thread, after the write.
  absl::StatusOr<std::shared_ptr<const Row>> Get(SqliteDb& db, int64_t rowid) {
    if (auto it = rows_.find(rowid); it != rows_.end()) return it->second;
    TL_ASSIGN_OR_RETURN(Row row, load_(db, rowid));
    auto kept = std::make_shared<const Row>(std::move(row));
    rows_.emplace(rowid, kept);
    commit_.OnRollback([this, rowid] { rows_.erase(rowid); });
    return kept;
  }

 private:
  SqliteDb& writer_;
  GroupCommit& commit_;
  const std::string table_;
  const Loader load_;
  absl::flat_hash_map<int64_t, std::shared_ptr<const Row>> rows_;
};

}  // namespace tuneledger

#endif  // TUNELEDGER_SERVER_CORE_WRITER_ROW_CACHE_H_
