// The defaults and limits of a JobSpec, in one place. Header-only and dependency-free, so that
// both the server (ValidateJobSpec / defaults filling, which link protobuf) and the trainer
// (which links neither protobuf nor Abseil) use the same numbers.
#ifndef TUNELEDGER_WORKER_TRAINER_JOB_SPEC_DEFAULTS_H_
#define TUNELEDGER_WORKER_TRAINER_JOB_SPEC_DEFAULTS_H_

#include <array>
#include <string_view>

namespace tuneledger::spec_defaults {

// LoRA
inline constexpr int kLoraR = 16;
inline constexpr int kLoraRMax = 1024;
inline constexpr double kLoraAlpha = 32.0;
inline constexpr double kLoraDropout = 0.1;
inline constexpr std::array<std::string_view, 2> kTargetModules = {"q_proj", "v_proj"};
// Every projection LoRA may wrap, with Hugging Face Llama names.
inline constexpr std::array<std::string_view, 7> kAllTargetModules = {
    "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};

// Training
inline constexpr int kEpochs = 1;  // when neither epochs nor max_steps is set
inline constexpr int kBatchSize = 8;
inline constexpr int kGradAccumSteps = 1;
inline constexpr double kLearningRate = 2e-4;
inline constexpr int kSeqLen = 256;
inline constexpr int kSeqLenMax = 131072;
inline constexpr int kCheckpointEverySteps = 50;
inline constexpr int kEvalEverySteps = 50;
inline constexpr double kWeightDecay = 0.0;
inline constexpr double kMaxGradNorm = 1.0;
inline constexpr int kSampleMaxTokens = 64;

// Budget: fractions of budget_usd at which an event is recorded.
inline constexpr std::array<double, 3> kBudgetThresholds = {0.5, 0.8, 1.0};

// Scheduling
inline constexpr int kGpus = 1;
inline constexpr int kMaxAttempts = 3;
inline constexpr int kPriorityMin = -1000;
inline constexpr int kPriorityMax = 1000;

}  // namespace tuneledger::spec_defaults

#endif  // TUNELEDGER_WORKER_TRAINER_JOB_SPEC_DEFAULTS_H_
