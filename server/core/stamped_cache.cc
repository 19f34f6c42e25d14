#include "server/core/stamped_cache.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"

namespace tuneledger {

namespace fs = std::filesystem;

std::string FileStamp(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "";
  return absl::StrCat(st.st_dev, ":", st.st_ino, ":", st.st_size, ":", st.st_mtim.tv_sec, ".",
                      st.st_mtim.tv_nsec, ":", st.st_ctim.tv_sec, ".", st.st_ctim.tv_nsec, ":",
                      st.st_mode);
}

std::string FolderStamp(const std::string& dir) {
  std::string stamp = FileStamp(dir);
  if (stamp.empty()) return "";
  std::error_code error;
  std::vector<std::string> names;
  for (fs::directory_iterator it(dir, error), end; !error && it != end; it.increment(error)) {
    names.push_back(it->path().filename().string());
  }
  if (error) return "";
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    absl::StrAppend(&stamp, "|", name, "=", FileStamp((fs::path(dir) / name).string()));
  }
  return stamp;
}

}  // namespace tuneledger
