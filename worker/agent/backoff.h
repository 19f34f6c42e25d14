// Exponential backoff with jitter for retrying a server that is gone (registration, lease
// polling, reopening the progress stream, FinishAttempt).
// Thread safety: not thread-safe; each retry loop owns its Backoff.
#ifndef TUNELEDGER_WORKER_AGENT_BACKOFF_H_
#define TUNELEDGER_WORKER_AGENT_BACKOFF_H_

#include <algorithm>
#include <random>

#include "absl/time/time.h"

namespace tuneledger::worker {

class Backoff {
 public:
  Backoff(absl::Duration initial, absl::Duration max)
      : initial_(initial), max_(max), next_(initial), random_(std::random_device{}()) {}

  // The delay before the next retry: the current step with +-20% jitter (so that a fleet of
  // workers does not reconnect in lockstep); the step then doubles up to max.
  absl::Duration Next() {
    std::uniform_real_distribution<double> jitter(0.8, 1.2);
    absl::Duration delay = next_ * jitter(random_);
    next_ = std::min(next_ * 2, max_);
    return delay;
  }
  void Reset() { next_ = initial_; }

 private:
  absl::Duration initial_;
  absl::Duration max_;
  absl::Duration next_;
  std::mt19937 random_;
};

}  // namespace tuneledger::worker

#endif  // TUNELEDGER_WORKER_AGENT_BACKOFF_H_
