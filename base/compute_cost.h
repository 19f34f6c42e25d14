// The compute-cost formula (README.md "Job lifecycle and cost"), in one place: the server's cost
// model (server/core/cost_model.h, which builds bills and reports on it) and the worker agent
// (which reports its attempt's accrued cost) both call these.
//
//   attempt cost = price_per_gpu_hour x gpus x lease seconds / 3600
//
// Header-only and dependency-free apart from absl::Duration. Thread safety: pure functions.
#ifndef TUNELEDGER_BASE_COMPUTE_COST_H_
#define TUNELEDGER_BASE_COMPUTE_COST_H_

#include <algorithm>

#include "absl/time/time.h"

namespace tuneledger {

// What a worker charges for one attempt.
struct AttemptPricing {
  double price_per_gpu_hour = 0;  // USD
  int gpus = 1;
  bool spot = false;
};

// GPU-hours of a lease; a negative lease counts as zero.
inline double GpuHours(int gpus, absl::Duration lease) {
  return gpus * std::max(0.0, absl::ToDoubleSeconds(lease)) / 3600.0;
}

inline double AttemptCostUsd(const AttemptPricing& pricing, absl::Duration lease) {
  return pricing.price_per_gpu_hour * GpuHours(pricing.gpus, lease);
}

inline double RateUsdPerHour(const AttemptPricing& pricing) {
  return pricing.price_per_gpu_hour * pricing.gpus;
}

}  // namespace tuneledger

#endif  // TUNELEDGER_BASE_COMPUTE_COST_H_
