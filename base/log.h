// The one logging wrapper (Debian's Abseil has no absl/log). Human-readable lines on stderr:
//   2026-11-28T20:41:07.123Z I job_store.cc:42] message
// Thread-safe: each line is formatted first and written with one fwrite on an unbuffered stream.
//
//   TL_LOG(INFO) << "leased job " << id;
//   TL_LOG(WARNING) << ...;  TL_LOG(ERROR) << ...;
// Verbosity: TL_LOG(DEBUG) lines print only when the environment has TUNELEDGER_DEBUG=1.
#ifndef TUNELEDGER_BASE_LOG_H_
#define TUNELEDGER_BASE_LOG_H_

#include <sstream>

namespace tuneledger::log_internal {

enum class Severity { kDebug, kInfo, kWarning, kError };

bool DebugEnabled();

// Collects one line and writes it to stderr when destroyed.
class LogLine {
 public:
  LogLine(Severity severity, const char* file, int line);
  ~LogLine();
  LogLine(const LogLine&) = delete;
  LogLine& operator=(const LogLine&) = delete;

  template <typename T>
  LogLine& operator<<(const T& value) {
    stream_ << value;
    return *this;
  }

 private:
  std::ostringstream stream_;
};

// Swallows a disabled debug line without evaluating its operands' formatting.
struct Voidify {
  void operator&(LogLine&) {}
};

}  // namespace tuneledger::log_internal

#define TL_LOG_SEVERITY_DEBUG ::tuneledger::log_internal::Severity::kDebug
#define TL_LOG_SEVERITY_INFO ::tuneledger::log_internal::Severity::kInfo
#define TL_LOG_SEVERITY_WARNING ::tuneledger::log_internal::Severity::kWarning
#define TL_LOG_SEVERITY_ERROR ::tuneledger::log_internal::Severity::kError

#define TL_LOG(severity)                                                          \
  !(TL_LOG_SEVERITY_##severity != ::tuneledger::log_internal::Severity::kDebug || \
    ::tuneledger::log_internal::DebugEnabled())                                   \
      ? (void)0                                                                   \
      : ::tuneledger::log_internal::Voidify() &                                   \
            ::tuneledger::log_internal::LogLine(TL_LOG_SEVERITY_##severity, __FILE__, __LINE__)

#endif  // TUNELEDGER_BASE_LOG_H_
