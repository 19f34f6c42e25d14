// The pre-flight estimate of a job (JobEstimate in jobs.proto): what it will train and what that
// will cost on each class of registered workers, before it runs. JobService.EstimateJob returns
// it; SubmitJob records it with the job, and the cost report sets the bill against it.
//
//   1. Data. The train file is tokenized as tuneledger-train tokenizes it (the torch-free
//      tuneledger::trainer_data: TokenizeRecord with the model's tokenizer.json or byte-level
//      tokenizer and its chat template, truncation to seq_len, examples without targets dropped),
//      at most EstimatorOptions::max_tokenized_bytes of it in whole lines; a longer file's rest is
//      extrapolated by bytes. A model whose tokenizer the server cannot load (SentencePiece
//      tokenizer.model), a data file the trainer would refuse, or one the server cannot read
//      falls back to the file's size: kAssumedBytesPerToken bytes per token, each line one
//      example (or kAssumedExampleBytes per example when not even the lines can be read).
//      tokens_basis says which, and why.
//   2. Steps and tokens, by the trainer's rules (worker/trainer/recipe/train_main.cc TotalSteps,
//      train_loop.h NextBatch, batcher.h): batches_per_epoch = ceil(examples / batch_size),
//      steps_per_epoch = ceil(batches_per_epoch / grad_accum_steps) (a step never spans two
//      epochs), total_steps = max_steps, else max(1, steps_per_epoch x epochs); tokens_to_train =
//      the real (non-pad) tokens of every micro-batch of those steps, the trainer's final
//      `tokens`. A partial last epoch trains the first batches of that epoch's shuffled,
//      length-grouped order: the trainer's own (lm/data/epoch_order.h). With
//      data_selection the kept examples are known only after scoring, so their tokens use the
//      mean example length; scoring_tokens = every example's tokens once.
//   3. Model shape: config.json's dimensions with the training shape (LoRA rank and targets,
//      seq_len, batch_size, precision, gradient checkpointing) as the key past jobs are matched
//      on; model_params from the dimensions.
//   4. Rate per worker class (ACTIVE workers with at least spec.gpus GPUs, grouped by
//      accelerator, price and spot): tokens per billed lease second of the newest
//      max_past_jobs SUCCEEDED jobs of the same shape whose attempts all ran on that
//      accelerator; otherwise a cold start: kFlopsPerParameterPerToken x parameters per token
//      against an assumed sustained FLOP/s of the accelerator. Scoring tokens (forward only)
//      count kScoringTokenWeight of a trained token, in past jobs and in the estimate alike.
//      seconds = (tokens_to_train + kScoringTokenWeight x scoring_tokens) / tokens_per_second,
//      gpu_hours = seconds x spec.gpus / 3600, usd = gpu_hours x price; cheapest class first.
//
// Files are read once per submit unless EstimatorOptions::file_cache keeps them: the model
// folder's tokenizer (a tokenizer.json is megabytes of JSON) and the train file's count (up to
// max_tokenized_bytes tokenized) cost far more than the rest of a submit, and a sweep of jobs over
// one model and one dataset would redo them every time.
//
// Thread safety: pure functions of their arguments and of the files they read; EstimateFileCache
// is thread-safe.
#ifndef TUNELEDGER_SERVER_CORE_JOB_ESTIMATOR_H_
#define TUNELEDGER_SERVER_CORE_JOB_ESTIMATOR_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "server/core/job_store.h"
#include "server/core/stamped_cache.h"
#include "tuneledger/v1/jobs.pb.h"

namespace tuneledger {

// The assumptions of the file-size fallback.
inline constexpr double kAssumedBytesPerToken = 4.0;
inline constexpr int64_t kAssumedExampleBytes = 1024;
// FLOPs per model parameter per trained token on a cold start: forward 2 + backward 4, as for
// full training. LoRA skips the frozen weights' gradients; the excess stands in for attention,
// the optimizer and data handling. Gradient checkpointing runs each layer's forward again (+2).
inline constexpr double kFlopsPerParameterPerToken = 6.0;
inline constexpr double kCheckpointingFlopsPerParameterPerToken = 2.0;
// A scoring token (data selection: forward only, 2 of the 6 FLOPs) against a trained one.
inline constexpr double kScoringTokenWeight = 1.0 / 3.0;

namespace estimator_internal {

struct ModelReading;  // job_estimator.cc: a model folder's dimensions, tokenizer, chat template
struct DataReading;   // job_estimator.cc: a train file's count

}  // namespace estimator_internal

// What BuildJobEstimate read from files, kept between estimates while the files are unchanged:
// per model folder (stamped with the folder's listing and every entry's stat) its dimensions,
// tokenizer and chat template; per train file, model folder, seq_len, vocab and read bound
// (stamped with the folder's stamp and the file's stat) its count. The Scheduler holds one.
struct EstimateFileCache {
  explicit EstimateFileCache(size_t max_models = 4, size_t max_data = 32)
      : models(max_models), data(max_data) {}
  StampedCache<estimator_internal::ModelReading> models;
  StampedCache<estimator_internal::DataReading> data;
};

struct EstimatorOptions {
  // The train file is tokenized up to this many bytes (whole lines); the rest is extrapolated.
  int64_t max_tokenized_bytes = int64_t{32} << 20;
  // The newest past jobs one class's measured rate comes from.
  int max_past_jobs = 20;
  // Not owned; null: every estimate reads the files again.
  EstimateFileCache* file_cache = nullptr;
  // With file_cache: FolderStamp(spec.model_path()) and FileStamp(spec.train_path()) when the
  // caller took them already (the Scheduler's input checks do); unset: taken here.
  std::optional<std::string> model_stamp;
  std::optional<std::string> train_stamp;
};

// Active workers alike in all an estimate reads of them, and how many there are.
struct WorkerGroup {
  std::string accelerator;
  double price_per_gpu_hour = 0;
  bool spot = false;
  int gpus = 0;
  int workers = 0;
};

// `workers` grouped by accelerator, price, spot and GPUs (IDLE and BUSY ones; LOST and GONE are
// left out), in that key's order. An estimate reads the groups, not every worker: the Scheduler
// groups its workers once per change of the set, not once per submit.
std::vector<WorkerGroup> GroupActiveWorkers(const std::vector<v1::Worker>& workers);

// `spec`: validated, its paths confined and its defaults filled (what SubmitJob stores).
// `workers`: the registered workers, grouped (GroupActiveWorkers). `past_runs`: newest first
// (JobStore::ListSucceededRuns). Never fails: what it cannot read it assumes and says so in
// tokens_basis, each class's basis and notes.
v1::JobEstimate BuildJobEstimate(const v1::JobSpec& spec, const std::vector<WorkerGroup>& workers,
                                 const std::vector<SucceededRun>& past_runs, absl::Time now,
                                 const EstimatorOptions& options = {});

// The sustained FLOP/s a cold start assumes for an accelerator ("NVIDIA H100 80GB HBM3",
// "cpu"); `assumption` (if given) receives what was assumed, in words.
double AssumedFlopsPerSecond(const std::string& accelerator, std::string* assumption = nullptr);

}  // namespace tuneledger

#endif  // TUNELEDGER_SERVER_CORE_JOB_ESTIMATOR_H_
