// training.data_selection: before the first step of a fresh run, the base model scores every
// training example and the run trains on the top keep_fraction only.
//
// Shape legend: B batch, T tokens, D hidden, V vocab, N positions with a target, n rows of a
// chunk.
//
//   score(example) = mean over the example's trained positions t (labels[t+1] != -100: the
//                    positions the loss uses, causal_lm_loss.h) of
//     ENTROPY  H(p_t) = -sum_v p_t(v) log p_t(v)    the base model's uncertainty, nats
//     LOSS     -log p_t(labels[t+1])                 the base model's cross-entropy, nats
//   where p_t = softmax(norm(h_t) W_lm^T), from the base model in eval mode (no dropout),
//   without gradients.
//   kept = the ceil(keep_fraction x examples) highest scores; ties go to the earlier example.
//
// The recipe scores right after loading the base model and before --init-adapter, so the
// adapter is PEFT's fresh one (B = 0, lora_linear.h) and adds nothing: the scores are the base
// model's whatever adapter the run starts from.
//
// Two implementations of the score:
//   ExampleScores            the fast path: from the final hidden states and the lm_head weight,
//                            only at the positions with a target, in chunks of rows (never
//                            [B,T,V]), fp32 log-softmax
//   ExampleScoresFromLogits  the plain reference on full logits [B,T,V]
// tests/trainer/recipe_data_selection_test.cc checks they agree, and that ScoreExamples
// (length-sorted, padded batches) agrees with a plain per-example computation.
//
// A resumed run never scores: the kept indices travel in checkpoints (DataSelectionState,
// checkpoint_io.h), and CheckResumedSelection refuses a checkpoint whose selection is not the
// spec's.
//
// Thread safety: pure functions, except ScoreExamples and SelectTrainingExamples, which use the
// model (one training thread owns it) and write files.
#ifndef TUNELEDGER_WORKER_TRAINER_RECIPE_DATA_SELECTION_H_
#define TUNELEDGER_WORKER_TRAINER_RECIPE_DATA_SELECTION_H_

#include <torch/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "lm/data/jsonl_dataset.h"
#include "worker/trainer/model/llama_model.h"
#include "worker/trainer/recipe/causal_lm_loss.h"
#include "worker/trainer/recipe/progress_reporter.h"
#include "worker/trainer/recipe/train_state.h"
#include "worker/trainer/spec/job_spec.h"

namespace tuneledger::train {

// "entropy", "loss"; "none" for kNone. The progress lines' and checkpoints' spelling.
const char* SelectionMethodName(SelectionMethod method);

// hidden [B,T,D] fp32, lm_head_weight [V,D] (base dtype), labels [B,T] int64 (-100 = ignore)
// -> [B] fp32: each row's mean score over its trained positions (0 for a row without one).
torch::Tensor ExampleScores(const torch::Tensor& hidden, const torch::Tensor& lm_head_weight,
                            const torch::Tensor& labels, SelectionMethod method,
                            int64_t chunk_elements = kLossChunkElements);

// logits [B,T,V] float, labels [B,T] int64 -> [B] fp32, the same score on full logits.
torch::Tensor ExampleScoresFromLogits(const torch::Tensor& logits, const torch::Tensor& labels,
                                      SelectionMethod method);

// The indices (ascending) of the ceil(keep_fraction x scores.size()) highest scores, ties to the
// lower index. keep_fraction in (0, 1], else TrainError.
std::vector<int64_t> SelectTopFraction(const std::vector<double>& scores, double keep_fraction);

struct ScoringOptions {
  SelectionMethod method = SelectionMethod::kEntropy;
  int batch_size = 1;
  int64_t pad_id = 0;
  torch::Device device = torch::kCPU;
};

// Every example's score, in batches of batch_size: examples sorted by length (longest first)
// so that batches carry little padding, right-padded as training batches are (CollateBatch).
// The model is put in eval mode and back in train mode. After each batch `after_batch(scored)`
// is called with the number scored so far; when it returns false scoring stops and the result
// is nullopt.
std::optional<std::vector<double>> ScoreExamples(
    LlamaForCausalLM& model, const std::vector<TokenizedExample>& examples,
    const ScoringOptions& options, const std::function<bool(int64_t scored)>& after_batch);

// What a fresh run with a selection method does before its first step.
struct DataSelectionJob {
  ScoringOptions scoring;
  double keep_fraction = 1;
  // <out>/data_selection.jsonl (base/work_dir_layout.h); empty: not written (data-parallel
  // ranks other than 0, which score the same examples to the same kept set).
  std::string output_path;
  std::chrono::steady_clock::time_point process_start;  // for the lines' elapsed_s
  // Every scoring batch but the last lasts at least this long (TUNELEDGER_TRAIN_MIN_STEP_SECONDS).
  std::chrono::duration<double> min_batch_duration{0};
};

// Scores `train` with the base model (ScoreExamples), writing `scoring` lines: one before the
// first batch, one after a batch at most once a second, and the last with done and kept;
// selects the top fraction and writes the data_selection.jsonl file (WriteDataSelectionFile).
// nullopt when StopRequested() (stop_signal.h) became true during scoring (checked after each
// batch and its pacing sleep): nothing is written.
std::optional<DataSelectionState> SelectTrainingExamples(LlamaForCausalLM& model,
                                                         const TokenizedDataset& train,
                                                         const DataSelectionJob& job,
                                                         ProgressReporter& reporter);

// Writes one JSON line per example, {"example": i, "line": source line (when source_lines has
// one), "score": s, "kept": bool}, to `path` atomically (path.tmp, then rename). `kept`:
// ascending indices. Throws TrainError on I/O failure.
void WriteDataSelectionFile(const std::string& path, const std::vector<double>& scores,
                            const std::vector<int64_t>& kept,
                            const std::vector<int64_t>& source_lines);

// A resumed checkpoint's selection (nullopt: it was written without one) must be the spec's
// (method and keep_fraction), else TrainError "checkpoint <dir>: written for a different job:
// data_selection was <saved>, now <spec's>"; its kept indices must be ascending and below
// `examples` (the training set's size).
void CheckResumedSelection(const std::string& checkpoint_dir,
                           const std::optional<DataSelectionState>& saved, SelectionMethod method,
                           double keep_fraction, int64_t examples);

// examples[kept[0]], examples[kept[1]], ...
std::vector<TokenizedExample> KeptExamples(const std::vector<TokenizedExample>& examples,
                                           const std::vector<int64_t>& kept);

}  // namespace tuneledger::train

#endif  // TUNELEDGER_WORKER_TRAINER_RECIPE_DATA_SELECTION_H_
