// Reads tuneledger-train's stdout: the JSON lines of worker/trainer/PROGRESS_PROTOCOL.md.
//
//   LineSplitter splitter;
//   for (std::string& line : splitter.Feed(bytes_read)) {
//     absl::StatusOr<TrainerLine> parsed = ParseTrainerLine(line);
//     if (!parsed.ok()) { TL_LOG(WARNING) << parsed.status(); continue; }  // never fatal
//     ...
//   }
//
// Thread safety: ParseTrainerLine is a pure function; a LineSplitter is used by one thread.
#ifndef TUNELEDGER_WORKER_AGENT_TRAINER_OUTPUT_PARSER_H_
#define TUNELEDGER_WORKER_AGENT_TRAINER_OUTPUT_PARSER_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tuneledger/v1/worker.pb.h"

namespace tuneledger::worker {

// One line of trainer output, by its "type".
struct TrainerLine {
  enum class Type {
    kStarted,     // total_steps, start_step
    kScoring,     // update (SCORING): data selection scoring before the first step
    kProgress,    // update (PROGRESS)
    kEval,        // update (EVAL)
    kCheckpoint,  // update (CHECKPOINT) and checkpoint_path
    kDone,        // update (PROGRESS: step, loss = train_loss, eval_loss), adapter_dir and
                  // reason EARLY_STOPPED when "early_stopped" is true
    kStopped,     // update (CHECKPOINT) and checkpoint_path: stopped by a signal after saving;
                  // checkpoint_path empty when it stopped during scoring, before any checkpoint
    kError,       // message, and reason LOSS_DIVERGED when "reason" is "loss_diverged"
    kUnknown,     // a type this agent does not know (the protocol may grow): type_name
  };
  Type type = Type::kUnknown;
  std::string type_name;
  tuneledger::v1::TrainerUpdate update;
  int total_steps = 0;  // kStarted
  int start_step = 0;   // kStarted
  std::string checkpoint_path;
  std::string adapter_dir;
  std::string message;
  tuneledger::v1::Job::Reason reason = tuneledger::v1::Job::REASON_UNSPECIFIED;
  bool rank_lost = false;  // kError with "reason": "rank_lost" (a data-parallel rank was lost)
};

// Parses one line (without its newline). INVALID_ARGUMENT naming the problem for a line that
// is not a JSON object, has no string "type", or has a field of the wrong JSON type (numbers
// where numbers belong, strings for paths and messages). Unknown fields are ignored.
absl::StatusOr<TrainerLine> ParseTrainerLine(absl::string_view line);

// Cuts a byte stream into lines. A line longer than max_line_bytes is cut at that length (and
// will then fail to parse) so that a runaway trainer cannot grow the agent's memory.
class LineSplitter {
 public:
  explicit LineSplitter(size_t max_line_bytes = 1 << 20) : max_line_bytes_(max_line_bytes) {}

  // The complete lines in what has been fed so far (without "\n" or a trailing "\r").
  std::vector<std::string> Feed(absl::string_view bytes);
  // What is left after the stream ended (a last line without newline), if anything.
  std::optional<std::string> Finish();

 private:
  size_t max_line_bytes_;
  std::string partial_;
  bool discarding_ = false;  // dropping the rest of a line that was cut at the limit
};

}  // namespace tuneledger::worker

#endif  // TUNELEDGER_WORKER_AGENT_TRAINER_OUTPUT_PARSER_H_
