// The named steps of training, which train_main.cc (and the bundled model's pre-training tool)
// call in a loop:
//
//   NextBatch        the micro-batches of one optimizer step (grad_accum_steps of them, fewer
//                    at the end of an epoch: an optimizer step never spans two epochs)
//   ForwardBackward  logits, summed next-token loss / the step's target count, backward; a
//                    non-finite loss throws LossDivergedError "diverged at step N"
//   OptimizerStep    unscale (fp16), global-norm clip, lr of this step, AdamW step
//   Report           a `progress` line; with a divergence_factor, LossDivergedError once the
//                    mean loss of the last 10 steps (fewer at first) exceeds factor x its lowest
//   MaybeEvaluate    validation loss every eval_every_steps and after the last step; with
//                    patience_evals, keeps the parameters of the best evaluation, and
//                    ShouldStopEarly() turns true after that many evaluations without one
//   MaybeCheckpoint  a checkpoint every checkpoint_every_steps
//
// Shape legend: B batch, T tokens, V vocab.
//
// Data parallel (data_parallel.h): every rank runs the same loop on the same batches and trains
// its rows of each; ForwardBackward sums the step's loss, the stop requests and the gradients
// over the ranks, Evaluate splits the validation batches, and only rank 0 writes checkpoints.
// Each micro-batch reseeds the default generator from (seed, step, micro-batch), so that the
// LoRA dropout masks are the same on every rank, in a resumed attempt and in a single process.
//
// Throughput: tokens_per_sec counts the real (non-pad) tokens of every micro-batch trained in
// this attempt over the wall time since the first step of this attempt began (evaluation and
// checkpoint pauses included, model loading not).
//
// Thread safety: none; one training thread owns a TrainLoop and everything it references.
#ifndef TUNELEDGER_WORKER_TRAINER_RECIPE_TRAIN_LOOP_H_
#define TUNELEDGER_WORKER_TRAINER_RECIPE_TRAIN_LOOP_H_

#include <torch/optim/adamw.h>
#include <torch/types.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "worker/trainer/model/llama_model.h"
#include "worker/trainer/recipe/batcher.h"
#include "worker/trainer/recipe/data_parallel.h"
#include "worker/trainer/recipe/loss_scaler.h"
#include "worker/trainer/recipe/lr_schedule.h"
#include "worker/trainer/recipe/progress_reporter.h"
#include "worker/trainer/recipe/train_state.h"

namespace tuneledger::train {

struct TrainLoopOptions {
  int64_t total_steps = 1;
  int grad_accum_steps = 1;
  double max_grad_norm = 1.0;  // 0 = no clipping
  int eval_every_steps = 50;
  int checkpoint_every_steps = 50;  // 0 = only on request (Checkpoint())
  std::string checkpoint_root;      // <out>/checkpoints
  int keep_checkpoints = 3;
  std::string fingerprint;  // JSON object; see checkpoint_io.h
  torch::Device device = torch::kCPU;
  int64_t seed = 0;  // training.seed: the dropout stream of each micro-batch derives from it
  // training.early_stop (0 = off): evaluations without an improvement of more than min_delta
  // before ShouldStopEarly(), and the divergence factor.
  int patience_evals = 0;
  double min_delta = 0;
  double divergence_factor = 0;
  // training.data_selection's kept examples, carried in every checkpoint; nullopt without one.
  std::optional<DataSelectionState> data_selection;
  // When the process started, for elapsed_s.
  std::chrono::steady_clock::time_point process_start = std::chrono::steady_clock::now();
};

// What ForwardBackward measured.
struct StepResult {
  double loss = 0;      // mean next-token loss over the step's targets (all ranks)
  int64_t tokens = 0;   // real tokens processed (all ranks)
  int64_t targets = 0;  // tokens that carried loss (all ranks)
};

// The objects a loop drives; all must outlive it.
struct TrainLoopParts {
  LlamaForCausalLM model{nullptr};
  std::vector<std::string> parameter_names;  // names of `parameters`, for checkpoints
  std::vector<torch::Tensor> parameters;     // what the optimizer updates
  torch::optim::AdamW* optimizer = nullptr;
  const LrSchedule* schedule = nullptr;
  DynamicLossScaler* loss_scaler = nullptr;
  LengthGroupedBatcher* batcher = nullptr;
  const std::vector<Batch>* eval_batches = nullptr;  // may be empty: no validation
  ProgressReporter* reporter = nullptr;
  DataParallel* data_parallel = nullptr;  // one process: a DataParallel()
};

class TrainLoop {
 public:
  TrainLoop(TrainLoopParts parts, TrainLoopOptions options);

  // Continues from a checkpoint (see train_state.h); the fingerprint must match.
  void Restore(const TrainSnapshot& snapshot, const std::string& checkpoint_dir);

  std::vector<Batch> NextBatch();
  StepResult ForwardBackward(const std::vector<Batch>& micro_batches);
  void OptimizerStep();
  void Report(const StepResult& result);
  void MaybeEvaluate();
  void MaybeCheckpoint();

  // Mean validation loss per target token (eval mode, no grad); NaN without validation data.
  double Evaluate();
  // Evaluates and writes an `eval` line for the current step.
  void EvaluateAndReport();
  // Writes a checkpoint of the current state now; returns its absolute path ("" on data-parallel
  // ranks other than 0, which write none).
  std::string Checkpoint();

  bool finished() const { return state_.step >= options_.total_steps; }
  // A stop was requested (SIGTERM, stop_signal.h): of this process alone; with data parallel, of
  // any rank as of the last ForwardBackward, so that every rank stops after the same step.
  bool StopAgreed() const;
  // patience_evals evaluations in a row did not improve on the best eval loss.
  bool ShouldStopEarly() const;
  // Puts the parameters of the best evaluation (state().best_step) back into the model.
  void RestoreBestParameters();
  const TrainState& state() const { return state_; }
  bool has_validation() const { return !parts_.eval_batches->empty(); }
  // Mean loss of the last few steps of this attempt (NaN before the first step).
  double RecentTrainLoss() const;
  // Epoch as a fraction (2.5 = half-way through the third epoch).
  double EpochProgress() const;

 private:
  TrainLoopParts parts_;
  TrainLoopOptions options_;
  TrainState state_;
  std::deque<double> recent_losses_;
  bool stop_agreed_ = false;
  int64_t attempt_tokens_ = 0;
  std::optional<std::chrono::steady_clock::time_point> loop_start_;
  std::optional<std::string> last_checkpoint_;  // written at state_.step, if any
  std::vector<torch::Tensor> best_parameters_;  // at state_.best_step (early stopping), detached
};

}  // namespace tuneledger::train

#endif  // TUNELEDGER_WORKER_TRAINER_RECIPE_TRAIN_LOOP_H_
