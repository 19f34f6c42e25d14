#include "base/executable_dir.h"

#include <filesystem>
#include <optional>
#include <system_error>

#include "gtest/gtest.h"

namespace tuneledger {
namespace {

namespace fs = std::filesystem;

TEST(ExecutableDirTest, IsTheFolderThatHoldsTheRunningTestBinary) {
  const std::optional<fs::path> dir = ExecutableDir();
  ASSERT_TRUE(dir.has_value()) << "/proc/self/exe is not readable";
  EXPECT_TRUE(dir->is_absolute()) << *dir;
  // CMake puts every executable, this test among them, in TUNELEDGER_BIN_DIR.
  std::error_code error;
  EXPECT_TRUE(fs::equivalent(*dir, TUNELEDGER_BIN_DIR, error))
      << *dir << " vs " << TUNELEDGER_BIN_DIR << " " << error.message();
  EXPECT_TRUE(fs::is_regular_file(*dir / "executable_dir_test")) << *dir;
}

}  // namespace
}  // namespace tuneledger
