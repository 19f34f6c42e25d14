// FuzzScratchFile: one file per process that a fuzz target rewrites with each input, for the
// readers that take a path (LoadJsonlDataset, HfTokenizer::FromFiles, LoadJobSpec), so that the
// fuzzer runs exactly what the trainer runs. It lives in a fresh folder under $TMPDIR (or /tmp),
// removed at exit; tests/fuzz/run.sh points TMPDIR into the fuzz build folder, so that a run
// killed on a crash leaves nothing in /tmp.
//
// Thread safety: none; a fuzz target runs one input at a time.
#ifndef TUNELEDGER_TESTS_FUZZ_FUZZ_SCRATCH_FILE_H_
#define TUNELEDGER_TESTS_FUZZ_FUZZ_SCRATCH_FILE_H_

#include <cstddef>
#include <cstdint>
#include <string>

namespace tuneledger::fuzz {

class FuzzScratchFile {
 public:
  // `name` is the file's name inside the folder (readers may look for fixed names).
  explicit FuzzScratchFile(const std::string& name);
  ~FuzzScratchFile();
  FuzzScratchFile(const FuzzScratchFile&) = delete;
  FuzzScratchFile& operator=(const FuzzScratchFile&) = delete;

  // Replaces the file's content; aborts when the file cannot be written (not the input's fault).
  const std::string& Write(const uint8_t* data, size_t size) const;
  const std::string& Write(const std::string& text) const;
  // Removes the file (a reader may treat "absent" differently from "empty").
  void Remove() const;

  const std::string& path() const { return path_; }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  std::string path_;
};

}  // namespace tuneledger::fuzz

#endif  // TUNELEDGER_TESTS_FUZZ_FUZZ_SCRATCH_FILE_H_
