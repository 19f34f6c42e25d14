// Time source for everything that makes time-based decisions (lease expiry, cost accrual,
// metric retention), so that tests drive time instead of sleeping.
// Thread safety: both implementations are safe to call from any thread.
#ifndef TUNELEDGER_BASE_CLOCK_H_
#define TUNELEDGER_BASE_CLOCK_H_

#include <atomic>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace tuneledger {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
};

class RealClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
};

// A clock that moves only when told to. Starts at a fixed, arbitrary instant.
class FakeClock final : public Clock {
 public:
  FakeClock() : nanos_(absl::ToUnixNanos(absl::FromUnixSeconds(1'800'000'000))) {}
  absl::Time Now() const override { return absl::FromUnixNanos(nanos_.load()); }
  void Advance(absl::Duration d) { nanos_ += absl::ToInt64Nanoseconds(d); }

 private:
  std::atomic<int64_t> nanos_;
};

}  // namespace tuneledger

#endif  // TUNELEDGER_BASE_CLOCK_H_
