// Values read from files, kept while the files are unchanged: the server's submit path reads the
// same model folder and train file for every job of a sweep.
//
//   StampedCache<Reading> cache(/*capacity=*/4);
//   const std::string stamp = FolderStamp(dir);   // taken before reading
//   if (!stamp.empty()) reading = cache.GetOrRead(dir, stamp, [&] { return Read(dir); });
//
// A stamp is text made from stat (device, inode, size, mtime and ctime in ns, mode): a file
// rewritten, replaced, renamed over or re-permissioned changes it. Taken before the read, so a
// file changed during the read is read again next time.
//
// Thread safety: StampedCache is thread-safe; the stamp functions are pure functions of the
// file system.
#ifndef TUNELEDGER_SERVER_CORE_STAMPED_CACHE_H_
#define TUNELEDGER_SERVER_CORE_STAMPED_CACHE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace tuneledger {

// The stat of `path` (following links) as text; empty when it cannot be stat'ed.
std::string FileStamp(const std::string& path);
// A folder's stamp: the folder's own and every entry's, by name (a file added, removed,
// renamed, rewritten or re-permissioned changes it). Empty when the folder cannot be listed.
// The entry names of a folder that had not changed for a second when it was listed are kept
// while the folder's own stamp stays the same; every entry is stat'ed each time.
std::string FolderStamp(const std::string& dir);

// Values read from files, each kept with the stamp of the files it was read from (FileStamp,
// FolderStamp) and served only while the stamp is unchanged; at most `capacity` entries, the least
// recently used evicted first. Callers asking for a key that another caller is reading under the
// same stamp wait for that read instead of repeating it (16 clients submitting against a new model
// parse its tokenizer once).
template <typename T>
class StampedCache {
 public:
  explicit StampedCache(size_t capacity) : capacity_(capacity) {}

  // The value read under `stamp`: kept (a hit), or made by read() now (a miss) and kept.
  std::shared_ptr<const T> GetOrRead(const std::string& key, const std::string& stamp,
                                     const std::function<std::shared_ptr<const T>()>& read) {
    {
      absl::MutexLock lock(&mu_);
      auto reading_it = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        auto it = reading_.find(key);
        return it != reading_.end() && it->second == stamp;
      };
      auto not_reading = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !reading_it(); };
      mu_.Await(absl::Condition(&not_reading));
      auto it = entries_.find(key);
      if (it != entries_.end() && it->second.stamp == stamp) {
        ++hits_;
        it->second.used = ++uses_;
        return it->second.value;
      }
      ++misses_;
      reading_[key] = stamp;
    }
    std::shared_ptr<const T> value;
    try {
      value = read();
    } catch (...) {
      absl::MutexLock lock(&mu_);
      reading_.erase(key);
      throw;
    }
    absl::MutexLock lock(&mu_);
    reading_.erase(key);
    entries_[key] = Entry{stamp, value, ++uses_};
    while (entries_.size() > capacity_) {
      auto oldest = entries_.begin();
      for (auto e = entries_.begin(); e != entries_.end(); ++e) {
        if (e->second.used < oldest->second.used) oldest = e;
      }
      entries_.erase(oldest);
    }
    return value;
  }

  int64_t hits() const {
    absl::MutexLock lock(&mu_);
    return hits_;
  }
  int64_t misses() const {
    absl::MutexLock lock(&mu_);
    return misses_;
  }
  size_t size() const {
    absl::MutexLock lock(&mu_);
    return entries_.size();
  }

 private:
  struct Entry {
    std::string stamp;
    std::shared_ptr<const T> value;
    uint64_t used = 0;  // uses_ at the last hit or read
  };
  const size_t capacity_;
  mutable absl::Mutex mu_;
  std::map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> reading_ ABSL_GUARDED_BY(mu_);  // key -> stamp being read
  uint64_t uses_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t hits_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t misses_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace tuneledger

#endif  // TUNELEDGER_SERVER_CORE_STAMPED_CACHE_H_
