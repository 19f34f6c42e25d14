#include "worker/trainer/recipe/train_loop.h"

#include <torch/torch.h>

#include <cmath>
#include <numeric>
#include <sstream>

#include "lm/trainer_error.h"
#include "worker/trainer/recipe/causal_lm_loss.h"
#include "worker/trainer/recipe/checkpoint_io.h"
#include "worker/trainer/recipe/device_memory.h"
#include "worker/trainer/recipe/optimizer_setup.h"
#include "worker/trainer/recipe/stop_signal.h"

namespace tuneledger::train {
namespace {

constexpr size_t kRecentLossWindow = 10;

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The default generator of `device`, seeded for micro-batch `micro` of optimizer step `step`
// (0-based): LoRA dropout is then a function of (seed, step, micro-batch) alone.
void SeedMicroBatch(const torch::Device& device, int64_t seed, int64_t step, size_t micro) {
  constexpr uint64_t kMicroBatchesPerStep = 1 << 16;  // above grad_accum_steps' limit
  const uint64_t value = static_cast<uint64_t>(seed) * 0x9E3779B97F4A7C15ULL +
                         static_cast<uint64_t>(step) * kMicroBatchesPerStep + micro;
  at::Generator generator = at::globalContext().defaultGenerator(device);
  std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_current_seed(value);
}

}  // namespace

TrainLoop::TrainLoop(TrainLoopParts parts, TrainLoopOptions options)
    : parts_(std::move(parts)), options_(std::move(options)) {
  if (parts_.optimizer == nullptr || parts_.schedule == nullptr || parts_.loss_scaler == nullptr ||
      parts_.batcher == nullptr || parts_.eval_batches == nullptr || parts_.reporter == nullptr ||
      parts_.data_parallel == nullptr) {
    throw TrainError("TrainLoop: every part must be given");
  }
  parts_.model->train();
}

void TrainLoop::Restore(const TrainSnapshot& snapshot, const std::string& checkpoint_dir) {
  CheckFingerprint(checkpoint_dir, snapshot.fingerprint, options_.fingerprint);
  state_ = RestoreSnapshot(snapshot, parts_.parameter_names, parts_.parameters, *parts_.optimizer,
                           options_.device);
  parts_.batcher->Seek(state_.data);
  parts_.loss_scaler->Restore(state_.loss_scaler);
  best_parameters_.clear();
  for (const torch::Tensor& best : snapshot.best_parameters) {
    best_parameters_.push_back(best.to(options_.device));
  }
  // A checkpoint of this attempt's own folder already holds this state; one of another
  // attempt (--resume-from) does not count: a stop now writes one here.
  if (checkpoint_dir.rfind(options_.checkpoint_root + "/", 0) == 0) {
    last_checkpoint_ = checkpoint_dir;
  }
}

std::vector<Batch> TrainLoop::NextBatch() {
  LengthGroupedBatcher& batcher = *parts_.batcher;
  std::vector<Batch> micro_batches;
  for (int i = 0; i < options_.grad_accum_steps; ++i) {
    micro_batches.push_back(batcher.Next());
    if (batcher.position().batch_in_epoch == batcher.batches_per_epoch()) break;  // epoch end
  }
  state_.data = batcher.position();
  return micro_batches;
}

StepResult TrainLoop::ForwardBackward(const std::vector<Batch>& micro_batches) {
  if (!loop_start_) loop_start_ = std::chrono::steady_clock::now();
  DataParallel& data_parallel = *parts_.data_parallel;
  StepResult result;
  for (const Batch& batch : micro_batches) {
    result.tokens += batch.tokens;
    result.targets += batch.targets;
  }
  for (const torch::Tensor& parameter : parts_.parameters) {
    if (parameter.grad().defined()) parameter.grad().zero_();
  }
  // Each micro-batch's summed loss is divided by the whole step's target count (of all ranks),
  // so the step's gradient, summed over the ranks, is that of the mean over all its targets,
  // however they fall into micro-batches and ranks.
  const double scale = parts_.loss_scaler->scale() / static_cast<double>(result.targets);
  // This rank's last micro-batch with rows: its backward all-reduces gradients as they come.
  size_t last_with_rows = micro_batches.size();
  for (size_t micro = 0; micro < micro_batches.size(); ++micro) {
    if (data_parallel.Shard(micro_batches[micro].input_ids.size(0)).count > 0) {
      last_with_rows = micro;
    }
  }
  double loss_sum = 0;
  for (size_t micro = 0; micro < micro_batches.size(); ++micro) {
    const Batch& batch = micro_batches[micro];
    SeedMicroBatch(options_.device, options_.seed, state_.step, micro);
    const int64_t rows = batch.input_ids.size(0);
    const RowShard shard = data_parallel.Shard(rows);
    if (shard.count == 0) continue;  // a short last batch: this rank has none of its rows
    torch::Tensor input_ids =
        batch.input_ids.narrow(0, shard.offset, shard.count).to(options_.device);  // [b,T]
    torch::Tensor labels =
        batch.labels.narrow(0, shard.offset, shard.count).to(options_.device);  // [b,T]
    parts_.model->SetDropoutRows(shard.offset, rows);
    torch::Tensor hidden = parts_.model->Hidden(input_ids);  // [b,T,D]
    torch::Tensor batch_loss =
        CausalLmLossSum(hidden, parts_.model->LmHeadWeight(), labels);  // scalar
    loss_sum += batch_loss.item<double>();
    if (micro == last_with_rows) data_parallel.ExpectLastBackward(parts_.parameters);
    (batch_loss * scale).backward();
  }
  // Before any other collective, so that every rank issues them in the same order.
  data_parallel.AllReduceGradients(parts_.parameters);
  // One collective carries the loss and the stop requests; with one process it is a copy.
  const std::vector<double> sums =
      data_parallel.AllReduceSum({loss_sum, StopRequested() ? 1. : 0.});
  loss_sum = sums[0];
  stop_agreed_ = sums[1] > 0;
  if (!std::isfinite(loss_sum)) {
    throw LossDivergedError("diverged at step " + std::to_string(state_.step + 1) + ": loss is " +
                            std::to_string(loss_sum));
  }
  result.loss = loss_sum / static_cast<double>(result.targets);
  return result;
}

bool TrainLoop::StopAgreed() const {
  return parts_.data_parallel->world_size() > 1 ? stop_agreed_ : StopRequested();
}

void TrainLoop::OptimizerStep() {
  const int64_t step_number = state_.step + 1;
  DynamicLossScaler& scaler = *parts_.loss_scaler;
  const bool finite = scaler.UnscaleGradients(parts_.parameters);
  if (finite) {
    const double norm = ClipGradNorm(parts_.parameters, options_.max_grad_norm);
    if (!std::isfinite(norm)) {
      throw LossDivergedError("diverged at step " + std::to_string(step_number) +
                              ": gradient norm is " + std::to_string(norm));
    }
    SetLearningRate(*parts_.optimizer, parts_.schedule->LrAt(state_.step));
    parts_.optimizer->step();
  }
  // fp16 overflow: the step is skipped and the scale halves (a normal event, not divergence).
  scaler.Update(finite);
  state_.loss_scaler = scaler.state();
  ++state_.step;
  last_checkpoint_.reset();
}

void TrainLoop::Report(const StepResult& result) {
  state_.tokens += result.tokens;
  attempt_tokens_ += result.tokens;
  recent_losses_.push_back(result.loss);
  if (recent_losses_.size() > kRecentLossWindow) recent_losses_.pop_front();
  // The mean of the last kRecentLossWindow steps (fewer at the start, so that a blow-up in the
  // first steps counts) against the lowest such mean so far.
  if (options_.divergence_factor > 0) {
    const double mean = RecentTrainLoss();
    if (!state_.lowest_recent_loss || mean < *state_.lowest_recent_loss) {
      state_.lowest_recent_loss = mean;
    }
    if (mean > options_.divergence_factor * *state_.lowest_recent_loss) {
      std::ostringstream message;
      message << "loss diverged at step " << state_.step << ": the mean training loss of the last "
              << recent_losses_.size() << " steps is " << mean
              << ", above training.early_stop.divergence_factor " << options_.divergence_factor
              << " x its lowest so far (" << *state_.lowest_recent_loss << ")";
      throw LossDivergedError(message.str());
    }
  }
  const double loop_seconds = SecondsSince(*loop_start_);
  ProgressLine line;
  line.step = state_.step;
  line.total_steps = options_.total_steps;
  line.epoch = EpochProgress();
  line.loss = result.loss;
  line.lr = parts_.schedule->LrAt(state_.step - 1);
  line.tokens = state_.tokens;
  line.tokens_per_sec = loop_seconds > 0 ? static_cast<double>(attempt_tokens_) / loop_seconds : 0;
  line.elapsed_s = SecondsSince(options_.process_start);
  line.gpu_peak_mib = PeakDeviceMemoryMib(options_.device);
  parts_.reporter->Progress(line);
}

void TrainLoop::MaybeEvaluate() {
  if (!has_validation()) return;
  if (state_.step % options_.eval_every_steps == 0 || finished()) EvaluateAndReport();
}

void TrainLoop::MaybeCheckpoint() {
  if (options_.checkpoint_every_steps > 0 && state_.step % options_.checkpoint_every_steps == 0 &&
      !finished()) {
    Checkpoint();
  }
}

double TrainLoop::Evaluate() {
  if (!has_validation()) return std::nan("");
  torch::NoGradGuard no_grad;
  parts_.model->eval();
  DataParallel& data_parallel = *parts_.data_parallel;
  const std::vector<Batch>& batches = *parts_.eval_batches;
  double loss_sum = 0;
  double targets = 0;
  // Batch i is rank (i mod world size)'s; the sums are then added over the ranks.
  for (size_t i = data_parallel.rank(); i < batches.size();
       i += static_cast<size_t>(data_parallel.world_size())) {
    const Batch& batch = batches[i];
    torch::Tensor hidden = parts_.model->Hidden(batch.input_ids.to(options_.device));  // [B,T,D]
    loss_sum +=
        CausalLmLossSum(hidden, parts_.model->LmHeadWeight(), batch.labels.to(options_.device))
            .item<double>();
    targets += static_cast<double>(batch.targets);
  }
  parts_.model->train();
  const std::vector<double> sums = data_parallel.AllReduceSum({loss_sum, targets});
  return sums[0] / sums[1];
}

void TrainLoop::EvaluateAndReport() {
  const double loss = Evaluate();
  state_.last_eval_loss = loss;
  parts_.reporter->Eval(state_.step, loss);
  if (options_.patience_evals <= 0) return;
  if (!state_.best_eval_loss || loss < *state_.best_eval_loss - options_.min_delta) {
    state_.best_eval_loss = loss;
    state_.best_step = state_.step;
    state_.evals_since_best = 0;
    torch::NoGradGuard no_grad;
    best_parameters_.clear();
    for (const torch::Tensor& parameter : parts_.parameters) {
      best_parameters_.push_back(parameter.detach().clone());
    }
  } else {
    ++state_.evals_since_best;
  }
}

bool TrainLoop::ShouldStopEarly() const {
  return options_.patience_evals > 0 && state_.evals_since_best >= options_.patience_evals;
}

void TrainLoop::RestoreBestParameters() {
  if (best_parameters_.size() != parts_.parameters.size()) {
    throw TrainError("early stopping: no parameters of a best evaluation to restore");
  }
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < best_parameters_.size(); ++i) {
    torch::Tensor parameter = parts_.parameters[i];
    parameter.copy_(best_parameters_[i]);
  }
}

std::string TrainLoop::Checkpoint() {
  if (!parts_.data_parallel->is_primary()) return "";  // rank 0 writes it for all ranks
  if (last_checkpoint_) return *last_checkpoint_;
  if (options_.checkpoint_root.empty()) throw TrainError("no checkpoint folder configured");
  TrainSnapshot snapshot =
      CaptureSnapshot(state_, parts_.parameter_names, parts_.parameters, *parts_.optimizer,
                      options_.device, options_.fingerprint);
  for (const torch::Tensor& best : best_parameters_) {
    snapshot.best_parameters.push_back(best.to(torch::kCPU).clone());
  }
  snapshot.data_selection = options_.data_selection;
  const std::string path =
      WriteCheckpoint(options_.checkpoint_root, snapshot, options_.keep_checkpoints);
  last_checkpoint_ = path;
  parts_.reporter->Checkpoint(state_.step, path);
  return path;
}

double TrainLoop::RecentTrainLoss() const {
  if (recent_losses_.empty()) return std::nan("");
  return std::accumulate(recent_losses_.begin(), recent_losses_.end(), 0.0) /
         static_cast<double>(recent_losses_.size());
}

double TrainLoop::EpochProgress() const {
  return static_cast<double>(state_.data.epoch) +
         static_cast<double>(state_.data.batch_in_epoch) /
             static_cast<double>(parts_.batcher->batches_per_epoch());
}

}  // namespace tuneledger::train
