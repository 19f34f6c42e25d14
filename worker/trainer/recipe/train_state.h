// Everything a resumed run needs to continue exactly where a checkpoint left off, and the
// functions that capture it from / restore it into the live objects (model, AdamW, RNG).
//
// Shape legend: P a trainable parameter's shape (LoRA A [r,in], B [out,r]).
//
// Bit-exact resume on CPU needs all of: the trainable weights, AdamW's per-parameter moments and
// step counts, the scheduler step (= state.step), torch's default generator (dropout), the
// data position (the epoch order is a pure function of seed and epoch, batcher.h) and the loss
// scaler. Tokens and the last losses are carried so the progress lines continue seamlessly.
//
// Thread safety: none; used by the training thread.
#ifndef TUNELEDGER_WORKER_TRAINER_RECIPE_TRAIN_STATE_H_
#define TUNELEDGER_WORKER_TRAINER_RECIPE_TRAIN_STATE_H_

#include <torch/optim/adamw.h>
#include <torch/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "worker/trainer/recipe/batcher.h"
#include "worker/trainer/recipe/loss_scaler.h"

namespace tuneledger::train {

// The scalar progress of a run.
struct TrainState {
  int64_t step = 0;  // optimizer steps completed (also the lr schedule's position)
  DataPosition data;
  int64_t tokens = 0;  // tokens trained on, over all attempts
  DynamicLossScaler::State loss_scaler;
  std::optional<double> last_eval_loss;
  // training.early_stop's bookkeeping (train_loop.h), carried across attempts by checkpoints.
  std::optional<double> best_eval_loss;      // the lowest eval loss that counted as an improvement
  int64_t best_step = 0;                     // the step of that evaluation
  int64_t evals_since_best = 0;              // evaluations since, none of which improved on it
  std::optional<double> lowest_recent_loss;  // lowest mean of the last <= 10 steps' losses so far
};

// AdamW's state of one parameter; step 0 with undefined tensors = not stepped yet.
struct AdamMoments {
  int64_t step = 0;
  torch::Tensor exp_avg;     // P, fp32
  torch::Tensor exp_avg_sq;  // P, fp32
};

// training.data_selection of a run (data_selection.h): what the spec asked and which training
// examples were kept, so that a resumed attempt trains on the same ones without scoring again.
struct DataSelectionState {
  std::string method;         // "entropy" or "loss" (SelectionMethodName)
  double keep_fraction = 0;   // in (0, 1]
  std::vector<int64_t> kept;  // indices into the training set's examples, ascending
};

// A checkpoint's content in memory (checkpoint_io.h writes and reads it).
struct TrainSnapshot {
  TrainState state;
  // Trainable parameters by name (LoRA: llama_model.h's NamedLoraParameters order), CPU copies.
  std::vector<std::pair<std::string, torch::Tensor>> parameters;
  std::vector<AdamMoments> moments;  // aligned with `parameters`
  torch::Tensor cpu_rng_state;       // torch's default CPU generator, uint8
  torch::Tensor cuda_rng_state;      // the current CUDA device's generator, or undefined
  // What must match for a checkpoint to be resumable with this spec (LoRA options, ...).
  std::string fingerprint;
  // The trainable parameters at state.best_step (early stopping), aligned with `parameters`;
  // empty when early stopping is off or nothing was evaluated yet. CPU copies.
  std::vector<torch::Tensor> best_parameters;
  // The run's data selection; nullopt when the spec asks for none.
  std::optional<DataSelectionState> data_selection;
};

// CPU copies of parameters, AdamW moments and generator states. `parameters` are the tensors
// the optimizer was built with, in the same order as `names`.
TrainSnapshot CaptureSnapshot(const TrainState& state, const std::vector<std::string>& names,
                              const std::vector<torch::Tensor>& parameters,
                              torch::optim::AdamW& optimizer, torch::Device device,
                              const std::string& fingerprint);

// Copies a snapshot back: parameter values (same names, order and shapes, else TrainError
// naming the tensor), AdamW moments, generators. Returns the scalar state.
TrainState RestoreSnapshot(const TrainSnapshot& snapshot, const std::vector<std::string>& names,
                           const std::vector<torch::Tensor>& parameters,
                           torch::optim::AdamW& optimizer, torch::Device device);

}  // namespace tuneledger::train

#endif  // TUNELEDGER_WORKER_TRAINER_RECIPE_TRAIN_STATE_H_
