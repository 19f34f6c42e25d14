// Dynamic loss scaling for fp16 training (as torch.cuda.amp.GradScaler does it).
//
// The loss is multiplied by scale() before backward so small fp16 gradients do not underflow;
// UnscaleGradients() divides the gradients back and reports whether all are finite. A step
// with inf/NaN gradients is skipped and the scale halves; after growth_interval finite steps in
// a row the scale doubles. Disabled (fp32, bf16): scale() is 1 and every step is taken.
//
// Thread safety: none; owned by the training thread.
#ifndef TUNELEDGER_WORKER_TRAINER_RECIPE_LOSS_SCALER_H_
#define TUNELEDGER_WORKER_TRAINER_RECIPE_LOSS_SCALER_H_

#include <torch/types.h>

#include <cstdint>
#include <vector>

namespace tuneledger::train {

class DynamicLossScaler {
 public:
  // What a checkpoint carries.
  struct State {
    double scale = 1.0;
    int64_t good_steps = 0;
  };

  static constexpr double kInitialScale = 65536.0;
  static constexpr int64_t kGrowthInterval = 2000;

  explicit DynamicLossScaler(bool enabled, double initial_scale = kInitialScale,
                             int64_t growth_interval = kGrowthInterval);

  bool enabled() const { return enabled_; }
  double scale() const { return enabled_ ? state_.scale : 1.0; }

  // Divides every defined gradient by scale(); true when all of them are finite. (Disabled:
  // leaves the gradients alone and returns true.)
  bool UnscaleGradients(const std::vector<torch::Tensor>& parameters) const;
  // After each optimizer step attempt: halve on overflow, grow after a run of good steps.
  void Update(bool gradients_finite);

  const State& state() const { return state_; }
  void Restore(const State& state) { state_ = state; }

 private:
  bool enabled_;
  int64_t growth_interval_;
  State state_;
};

}  // namespace tuneledger::train

#endif  // TUNELEDGER_WORKER_TRAINER_RECIPE_LOSS_SCALER_H_
