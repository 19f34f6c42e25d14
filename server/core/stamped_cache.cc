#include "server/core/stamped_cache.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <optional>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace tuneledger {

namespace fs = std::filesystem;

namespace {

std::string StampOf(const struct stat& st) {
  return absl::StrCat(st.st_dev, ":", st.st_ino, ":", st.st_size, ":", st.st_mtim.tv_sec, ".",
                      st.st_mtim.tv_nsec, ":", st.st_ctim.tv_sec, ".", st.st_ctim.tv_nsec, ":",
                      st.st_mode);
}

absl::Time TimeOf(const timespec& time) { return absl::TimeFromTimespec(time); }

// How long after a folder's last change its listing may be kept. File times come from a coarse
// clock (a tick of up to 10 ms), so two changes within one tick can leave the folder's times as
// they were; a listing taken this long after the last change cannot miss one.
constexpr absl::Duration kSettled = absl::Seconds(1);

// The entry names of folders whose listing was taken well after their last change, by path, with
// the folder's own stamp at that listing. Listing a folder (open, read, close) was half the cost of
// a FolderStamp, which every submit takes of its model folder.
class Listings {
 public:
  std::optional<std::vector<std::string>> Get(const std::string& dir, const std::string& stamp) {
    absl::MutexLock lock(&mu_);
    auto it = by_dir_.find(dir);
    if (it == by_dir_.end() || it->second.stamp != stamp) return std::nullopt;
    return it->second.names;
  }
  void Put(const std::string& dir, std::string stamp, std::vector<std::string> names) {
    absl::MutexLock lock(&mu_);
    if (by_dir_.size() >= kCapacity) by_dir_.clear();
    by_dir_[dir] = Listing{std::move(stamp), std::move(names)};
  }

 private:
  static constexpr size_t kCapacity = 256;
  struct Listing {
    std::string stamp;
    std::vector<std::string> names;
  };
  absl::Mutex mu_;
  std::map<std::string, Listing> by_dir_ ABSL_GUARDED_BY(mu_);
};

Listings& FolderListings() {
  static Listings* listings = new Listings();  // never destroyed: used until exit
  return *listings;
}

}  // namespace

std::string FileStamp(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "";
  return StampOf(st);
}

std::string FolderStamp(const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return "";
  std::string stamp = StampOf(st);
  // An entry added, removed or renamed changes the folder's mtime and ctime, so a listing is
  // good while the folder's stamp is the one it was taken under (and had settled by then).
  std::optional<std::vector<std::string>> names = FolderListings().Get(dir, stamp);
  if (!names.has_value()) {
    const absl::Time listed_at = absl::Now();
    std::error_code error;
    names.emplace();
    for (fs::directory_iterator it(dir, error), end; !error && it != end; it.increment(error)) {
      names->push_back(it->path().filename().string());
    }
    if (error) return "";
    std::sort(names->begin(), names->end());
    const absl::Time changed = std::max(TimeOf(st.st_mtim), TimeOf(st.st_ctim));
    if (listed_at - changed >= kSettled) FolderListings().Put(dir, stamp, *names);
  }
  for (const std::string& name : *names) {
    absl::StrAppend(&stamp, "|", name, "=", FileStamp((fs::path(dir) / name).string()));
  }
  return stamp;
}

}  // namespace tuneledger
