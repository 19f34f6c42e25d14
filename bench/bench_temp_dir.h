// BenchTempDir: a fresh folder per benchmark run, removed when the object goes away, so every
// benchmark makes its own data. The folder sits under $TMPDIR (default /tmp): point TMPDIR at
// the disk you want measured, because SQLite's fsync cost is a property of that disk.
// Thread safety: create and destroy on one thread; the accessors may be called from any thread.
#ifndef TUNELEDGER_BENCH_BENCH_TEMP_DIR_H_
#define TUNELEDGER_BENCH_BENCH_TEMP_DIR_H_

#include <stdlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tuneledger::bench {

class BenchTempDir {
 public:
  static absl::StatusOr<std::unique_ptr<BenchTempDir>> Create() {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base != nullptr ? base : "/tmp") + "/tl-bench-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) {
      return absl::InternalError("mkdtemp " + pattern + ": " + std::strerror(errno));
    }
    return std::unique_ptr<BenchTempDir>(new BenchTempDir(pattern));
  }
  ~BenchTempDir() {
    std::error_code error;
    std::filesystem::remove_all(path_, error);
  }
  BenchTempDir(const BenchTempDir&) = delete;
  BenchTempDir& operator=(const BenchTempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

  // Writes `text` to path()/name (creating parent folders) and returns the full path.
  absl::StatusOr<std::string> Write(const std::string& name, const std::string& text) const {
    const std::filesystem::path file = File(name);
    std::error_code error;
    std::filesystem::create_directories(file.parent_path(), error);
    std::ofstream out(file);
    out << text;
    out.close();
    if (error || !out) return absl::InternalError("cannot write " + file.string());
    return file.string();
  }

 private:
  explicit BenchTempDir(std::string path) : path_(std::move(path)) {}

  std::string path_;
};

}  // namespace tuneledger::bench

#endif  // TUNELEDGER_BENCH_BENCH_TEMP_DIR_H_
