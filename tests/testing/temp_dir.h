// TempDir: a fresh folder for one test (or one benchmark run), removed with its content when the
// object goes away, so that every test makes its own data and leaves nothing behind.
//
//   TempDir dir;                                        // $TMPDIR/tuneledger-test-XXXXXX
//   const std::string spec = dir.Write("in/spec.json", "{}");  // parent folders made too
//   Run("--out", dir.File("out"));
//
// The folder is made under $TMPDIR (/tmp when unset or empty); TUNELEDGER_KEEP_TEST_DIRS=1 keeps
// it for a post-mortem. A folder or file that cannot be made throws std::runtime_error naming
// it (gtest reports the exception as the test's failure).
//
// Standard library only (no gtest, Abseil, gRPC or protobuf), so that the trainer tests (which
// link LibTorch and nothing of the server's) and the benchmarks use it too: CMake target
// tuneledger::test_temp_dir, also linked by tuneledger::testing.
//
// Thread safety: construct and destroy on one thread; the const members may be called from any
// thread (Write() of one name from two threads at once is a race on that file).
#ifndef TUNELEDGER_TESTS_TESTING_TEMP_DIR_H_
#define TUNELEDGER_TESTS_TESTING_TEMP_DIR_H_

#include <string>

namespace tuneledger::testing {

class TempDir {
 public:
  // Makes <$TMPDIR or /tmp>/<prefix>-XXXXXX.
  explicit TempDir(const std::string& prefix = "tuneledger-test");
  // Removes the folder and everything in it, unless TUNELEDGER_KEEP_TEST_DIRS=1.
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // The folder's absolute path, without a trailing '/'.
  const std::string& path() const { return path_; }
  // path()/name (nothing is created).
  std::string File(const std::string& name) const;
  // Writes `contents` to File(name), replacing it and creating its parent folders, and returns
  // its path.
  std::string Write(const std::string& name, const std::string& contents) const;

 private:
  std::string path_;
};

}  // namespace tuneledger::testing

#endif  // TUNELEDGER_TESTS_TESTING_TEMP_DIR_H_
