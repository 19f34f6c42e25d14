// Where the running executable lies. tuneledger's executables find their siblings by it:
// tuneledger-server starts bin/tuneledger-worker, tuneledger-worker runs bin/tuneledger-train, and
// tuneledger-train loads its SentencePiece shim from bin/ or lib/.
//
// Header-only, the C++ standard library alone (the trainer links no Abseil). Linux: reads the
// /proc/self/exe link. Thread safety: a pure function of the process.
#ifndef TUNELEDGER_BASE_EXECUTABLE_DIR_H_
#define TUNELEDGER_BASE_EXECUTABLE_DIR_H_

#include <filesystem>
#include <optional>
#include <system_error>

namespace tuneledger {

// The absolute folder of the running executable, or std::nullopt when /proc/self/exe cannot be
// read (no /proc): callers decide what to fall back on.
inline std::optional<std::filesystem::path> ExecutableDir() {
  std::error_code error;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", error);
  if (error) return std::nullopt;
  return self.parent_path();
}

}  // namespace tuneledger

#endif  // TUNELEDGER_BASE_EXECUTABLE_DIR_H_
