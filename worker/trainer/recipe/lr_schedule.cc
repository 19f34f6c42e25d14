#include "worker/trainer/recipe/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace tuneledger::train {

LrSchedule::LrSchedule(LrScheduleKind kind, double peak_lr, int64_t warmup_steps,
                       int64_t total_steps)
    : kind_(kind),
      peak_lr_(peak_lr),
      warmup_steps_(std::max<int64_t>(0, warmup_steps)),
      total_steps_(std::max<int64_t>(1, total_steps)) {}

double LrSchedule::LrAt(int64_t step) const {
  if (step < warmup_steps_) {
    return peak_lr_ * static_cast<double>(step + 1) / static_cast<double>(warmup_steps_);
  }
  const double progress =
      std::min(1.0, static_cast<double>(step - warmup_steps_) /
                        static_cast<double>(std::max<int64_t>(1, total_steps_ - warmup_steps_)));
  switch (kind_) {
    case LrScheduleKind::kCosine:
      return peak_lr_ * 0.5 * (1.0 + std::cos(M_PI * progress));
    case LrScheduleKind::kLinear:
      return peak_lr_ * (1.0 - progress);
    case LrScheduleKind::kConstant:
      break;
  }
  return peak_lr_;
}

}  // namespace tuneledger::train
