// Checkpoints on disk: committed atomically, validated on read. <root> is an attempt's
// checkpoints/ folder; the folder names come from base/work_dir_layout.h.
//
//   <root>/step-<k>/            a complete checkpoint after k optimizer steps
//     header.json               {"format": "tuneledger-checkpoint", "version": 1, "step": k,
//                                "epoch", "batch_in_epoch", "tokens", "loss_scale",
//                                "loss_scale_good_steps", "last_eval_loss", "parameters":
//                                [names], "adam_steps": [per parameter], "fingerprint": {...},
//                                "early_stop": {...}, and with training.data_selection
//                                "data_selection": {"method", "keep_fraction", "kept":
//                                [example indices]}}
//     state.safetensors         param/<name>, exp_avg/<name>, exp_avg_sq/<name> (fp32),
//                               rng/cpu (and rng/cuda) (uint8 generator states)
//   <root>/step-<k>.tmp/        being written; never read, removed by the next write
//
// A write goes to step-<k>.tmp/, fsyncs each file and the folder, renames the folder to
// step-<k>/ and fsyncs <root>: a crash leaves either the whole checkpoint or none. Only the
// newest `keep` complete checkpoints are kept.
//
// Reading validates the header with real errors (never assert): a missing or unparsable
// header, another format, an unsupported version, missing fields or tensors are a TrainError
// "checkpoint <dir>: <problem>". The fingerprint (LoRA options, batch layout, dataset size ...)
// must equal the current run's, else the error names the differing key.
//
// Thread safety: stateless functions; do not write the same root from two threads.
#ifndef TUNELEDGER_WORKER_TRAINER_RECIPE_CHECKPOINT_IO_H_
#define TUNELEDGER_WORKER_TRAINER_RECIPE_CHECKPOINT_IO_H_

#include <optional>
#include <string>

#include "worker/trainer/recipe/train_state.h"

namespace tuneledger::train {

inline constexpr const char* kCheckpointFormat = "tuneledger-checkpoint";
inline constexpr int kCheckpointVersion = 1;
inline constexpr const char* kCheckpointHeaderFile = "header.json";
inline constexpr const char* kCheckpointTensorFile = "state.safetensors";

// Writes `snapshot` as <root>/step-<snapshot.state.step>/ and prunes to the newest `keep`.
// Returns the absolute path of the checkpoint folder. If that step's checkpoint already exists
// it is kept as is (same step, same state). Throws TrainError on I/O failure.
std::string WriteCheckpoint(const std::string& root, const TrainSnapshot& snapshot, int keep);

// The newest complete checkpoint folder under `root` (step-<k> with a header), if any.
std::optional<std::string> FindLatestCheckpoint(const std::string& root);

// Reads and validates a checkpoint folder.
TrainSnapshot ReadCheckpoint(const std::string& dir);

// Throws TrainError "checkpoint <dir>: written for a different job: <key> was <a>, now <b>"
// when the fingerprints (JSON objects) differ.
void CheckFingerprint(const std::string& dir, const std::string& checkpoint_fingerprint,
                      const std::string& current_fingerprint);

}  // namespace tuneledger::train

#endif  // TUNELEDGER_WORKER_TRAINER_RECIPE_CHECKPOINT_IO_H_
