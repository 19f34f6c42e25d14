#include "tests/testing/temp_dir.h"

#include <stdlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <system_error>

namespace tuneledger::testing {
namespace {

namespace fs = std::filesystem;

std::string TempRoot() {
  const char* tmpdir = std::getenv("TMPDIR");
  return tmpdir != nullptr && *tmpdir != '\0' ? tmpdir : "/tmp";
}

bool KeepTestDirs() {
  const char* keep = std::getenv("TUNELEDGER_KEEP_TEST_DIRS");
  return keep != nullptr && std::strcmp(keep, "1") == 0;
}

}  // namespace

TempDir::TempDir(const std::string& prefix) {
  std::string pattern = TempRoot() + "/" + prefix + "-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) {
    throw std::runtime_error("TempDir: mkdtemp " + pattern + ": " + std::strerror(errno));
  }
  std::error_code error;
  const fs::path absolute = fs::absolute(pattern, error);
  path_ = error ? pattern : absolute.lexically_normal().string();
}

TempDir::~TempDir() {
  if (KeepTestDirs()) return;
  std::error_code ignored;  // a destructor cannot fail a test; a leftover folder is harmless
  fs::remove_all(path_, ignored);
}

std::string TempDir::File(const std::string& name) const { return path_ + "/" + name; }

std::string TempDir::Write(const std::string& name, const std::string& contents) const {
  const fs::path file = File(name);
  std::error_code error;
  fs::create_directories(file.parent_path(), error);
  if (error) {
    throw std::runtime_error("TempDir: cannot create " + file.parent_path().string() + ": " +
                             error.message());
  }
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out << contents;
  out.close();
  if (!out) throw std::runtime_error("TempDir: cannot write " + file.string());
  return file.string();
}

}  // namespace tuneledger::testing
