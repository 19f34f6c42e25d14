// Writes the progress lines of PROGRESS_PROTOCOL.md: one JSON object per line on stdout,
// flushed after each line, `type` first. Non-finite numbers are written as null.
//
// Thread safety: none; only the training thread reports.
#ifndef TUNELEDGER_WORKER_TRAINER_RECIPE_PROGRESS_REPORTER_H_
#define TUNELEDGER_WORKER_TRAINER_RECIPE_PROGRESS_REPORTER_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <ostream>
#include <string>

namespace tuneledger::train {

struct StartedLine {
  int64_t total_steps = 0;
  int64_t start_step = 0;
  int64_t trainable_params = 0;
  int64_t total_params = 0;
  std::string device;
  std::string precision;
};

struct ProgressLine {
  int64_t step = 0;
  int64_t total_steps = 0;
  double epoch = 0;
  double loss = 0;
  double lr = 0;
  int64_t tokens = 0;  // cumulative over all attempts
  double tokens_per_sec = 0;
  double elapsed_s = 0;
  std::optional<double> gpu_peak_mib;  // written only on a GPU (device_memory.h)
};

// Data selection's scoring pass (data_selection.h), before the first step of a fresh run.
struct ScoringLine {
  int64_t scored = 0;  // examples scored so far
  int64_t total = 0;   // examples to score
  std::string method;  // "entropy" or "loss"
  double elapsed_s = 0;
  // The last line: scoring is over and `kept` examples were selected.
  bool done = false;
  int64_t kept = 0;
};

struct DoneLine {
  int64_t step = 0;
  std::string adapter_dir;
  double train_loss = 0;
  std::optional<double> eval_loss;  // null without validation data
  std::string merged_dir;           // empty: not written
  // training.early_stop ended the run before its last step; the adapter is the one of the
  // evaluation at best_step, and eval_loss is that evaluation's.
  bool early_stopped = false;
  int64_t best_step = 0;
};

class ProgressReporter {
 public:
  explicit ProgressReporter(std::ostream& out) : out_(out) {}

  void Started(const StartedLine& line);
  void Scoring(const ScoringLine& line);
  void Progress(const ProgressLine& line);
  void Eval(int64_t step, double eval_loss);
  void Checkpoint(int64_t step, const std::string& path);
  void Done(const DoneLine& line);
  // `checkpoint` empty: no field (a stop during data selection, before any checkpoint).
  void Stopped(int64_t step, const std::string& checkpoint);
  // `reason`: "loss_diverged" for a LossDivergedError, else empty (no field).
  void Error(const std::string& message, const std::string& reason = "");

 private:
  std::ostream& out_;
};

// A trainer program's edge: runs `body` and turns a TrainError, c10::Error or other exception
// escaping it into an `error` line on `reporter` and "<program>: error: <message>" on stderr,
// returning 1 (the protocol's "failed"); otherwise returns what `body` returned.
int RunReportingErrors(const std::string& program, ProgressReporter& reporter,
                       const std::function<int()>& body);

}  // namespace tuneledger::train

#endif  // TUNELEDGER_WORKER_TRAINER_RECIPE_PROGRESS_REPORTER_H_
