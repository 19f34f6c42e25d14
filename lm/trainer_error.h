// The one error type of the trainer. The trainer links no Abseil: components throw
// TrainError for bad input or state, with a message that names the problem (the file, the
// field, the tensor); only the programs' edge catches it (and c10::Error): RunReportingErrors
// in progress_reporter.h.
#ifndef TUNELEDGER_LM_TRAINER_ERROR_H_
#define TUNELEDGER_LM_TRAINER_ERROR_H_

#include <cstddef>
#include <stdexcept>
#include <string>

namespace tuneledger::train {

class TrainError : public std::runtime_error {
 public:
  explicit TrainError(const std::string& message) : std::runtime_error(message) {}
};

// The training loss went non-finite, or rose past training.early_stop.divergence_factor times
// its lowest: the job FAILS with reason LOSS_DIVERGED (the `error` line says "reason":
// "loss_diverged").
class LossDivergedError : public TrainError {
 public:
  using TrainError::TrainError;
};

// Data parallel (worker/trainer/recipe/data_parallel.h): another rank was lost or never came:
// the attempt ends for the whole gang and resumes from its last checkpoint, like a preemption
// (the `error` line says "reason": "rank_lost").
class RankLostError : public TrainError {
 public:
  using TrainError::TrainError;
};

// The words for a file that does not parse as JSON. nlohmann's own message quotes the text it
// read, which would copy a file's contents into job.message: callers report the position only.
inline std::string NotValidJson(std::size_t byte) {
  return "not valid JSON (at byte " + std::to_string(byte) + ")";
}

}  // namespace tuneledger::train

#endif  // TUNELEDGER_LM_TRAINER_ERROR_H_
