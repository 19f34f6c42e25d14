// Peak resident memory of this process, per benchmark case.
//
// Linux keeps the peak (VmHWM in /proc/self/status); writing "5" to /proc/self/clear_refs resets
// it to the current RSS (Linux >= 4.0), so a case that resets before its setup and reads after
// its last step reports its own peak, not the largest of every case run before it in the same
// process. Where the reset is refused the peak covers the whole process so far, and
// ResetPeakRss() says so by returning false.
// Thread safety: pure functions of process-wide state; callable from any thread.
#ifndef TUNELEDGER_BENCH_PEAK_RSS_H_
#define TUNELEDGER_BENCH_PEAK_RSS_H_

#include <cstdint>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

namespace tuneledger::bench {

// Resets the process's peak RSS to its current RSS. False when the kernel refused.
inline bool ResetPeakRss() {
  std::ofstream clear_refs("/proc/self/clear_refs");
  clear_refs << "5";
  clear_refs.close();
  return static_cast<bool>(clear_refs);
}

// Peak RSS (VmHWM) in bytes, or nullopt when /proc/self/status cannot be read.
inline std::optional<int64_t> PeakRssBytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) != 0) continue;
    std::istringstream fields(line.substr(6));
    int64_t kib = 0;
    if (fields >> kib) return kib * 1024;
  }
  return std::nullopt;
}

}  // namespace tuneledger::bench

#endif  // TUNELEDGER_BENCH_PEAK_RSS_H_
