// Learning rate per optimizer step: linear warmup, then cosine / linear decay or constant.
//
// Steps are 0-based (step s is the (s+1)-th optimizer step), W = warmup_steps, N = total_steps:
//   s <  W : peak * (s + 1) / W                      reaches the peak on the last warmup step
//   s >= W : p = (s - W) / max(1, N - W)             p in [0, 1)
//            COSINE   peak * 0.5 * (1 + cos(pi p))
//            LINEAR   peak * (1 - p)
//            CONSTANT peak
// Unlike Hugging Face's schedulers the first step does not run at lr 0 (no wasted step) and
// the last decay step is still > 0.
//
// Thread safety: immutable.
#ifndef TUNELEDGER_WORKER_TRAINER_RECIPE_LR_SCHEDULE_H_
#define TUNELEDGER_WORKER_TRAINER_RECIPE_LR_SCHEDULE_H_

#include <cstdint>

#include "worker/trainer/spec/job_spec.h"

namespace tuneledger::train {

class LrSchedule {
 public:
  LrSchedule(LrScheduleKind kind, double peak_lr, int64_t warmup_steps, int64_t total_steps);

  double LrAt(int64_t step) const;

 private:
  LrScheduleKind kind_;
  double peak_lr_;
  int64_t warmup_steps_;
  int64_t total_steps_;
};

}  // namespace tuneledger::train

#endif  // TUNELEDGER_WORKER_TRAINER_RECIPE_LR_SCHEDULE_H_
