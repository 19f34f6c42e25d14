#include "tests/fuzz/fuzz_scratch_file.h"

#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace tuneledger::fuzz {

FuzzScratchFile::FuzzScratchFile(const std::string& name) {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern =
      std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/tuneledger-fuzz-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) {
    std::perror(("FuzzScratchFile: mkdtemp " + pattern).c_str());
    std::abort();
  }
  dir_ = pattern;
  path_ = dir_ + "/" + name;
}

FuzzScratchFile::~FuzzScratchFile() {
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

const std::string& FuzzScratchFile::Write(const uint8_t* data, size_t size) const {
  std::ofstream out(path_, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  out.close();
  if (!out) {
    std::perror(("FuzzScratchFile: cannot write " + path_).c_str());
    std::abort();
  }
  return path_;
}

const std::string& FuzzScratchFile::Write(const std::string& text) const {
  return Write(reinterpret_cast<const uint8_t*>(text.data()), text.size());
}

void FuzzScratchFile::Remove() const { ::unlink(path_.c_str()); }

}  // namespace tuneledger::fuzz
