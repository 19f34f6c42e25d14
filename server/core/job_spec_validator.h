// Validation and defaults of a submitted JobSpec, by the one contract the trainer applies too
// (proto/tuneledger/v1/job_spec_contract.h); this file maps the proto onto it.
//
// ValidateJobSpec() is pure: it looks at the message only (no filesystem, no store, no clock)
// and reports EVERY bad field at once, so that a user fixes everything in one round trip:
//   INVALID_ARGUMENT "spec.lora.r: must be in [1, 1024], got 0; spec.training.learning_rate:
//   must be > 0, got -0.1"
// Field paths are proto field paths from the SubmitJobRequest (spec.budget.usd,
// spec.lora.target_modules[2], ...). ValidateJobInputs() is the separate check of what the spec
// names on disk. WithDefaults() fills every unset field with the contract's default.
// Thread safety: free functions without shared state.
#ifndef TUNELEDGER_SERVER_CORE_JOB_SPEC_VALIDATOR_H_
#define TUNELEDGER_SERVER_CORE_JOB_SPEC_VALIDATOR_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/data_roots.h"
#include "server/core/stamped_cache.h"
#include "tuneledger/v1/jobs.pb.h"

namespace tuneledger {

// OK, or INVALID_ARGUMENT listing every field that breaks a documented rule (ranges, enums,
// target module names, budget > 0 with increasing thresholds, epochs xor max_steps, text and
// list sizes, ...) and a spec larger than spec::kSpecMaxBytes serialized ("spec: ...").
absl::Status ValidateJobSpec(const v1::JobSpec& spec);

// The spec with model_path, train_path and valid_path replaced by their canonical absolute
// paths inside `tenant`'s data roots (base/data_roots.h). INVALID_ARGUMENT naming each path
// that is not inside one, with the same words whether or not the path exists;
// FAILED_PRECONDITION when the server has no roots at all.
absl::StatusOr<v1::JobSpec> ConfineJobPaths(const v1::JobSpec& spec, const DataRoots& roots,
                                            const std::string& tenant);

// OK, or INVALID_ARGUMENT naming each input that is not usable: spec.model_path must be a folder
// holding config.json and *.safetensors (or model.safetensors.index.json); spec.train_path and
// spec.valid_path (when set) must be readable regular files. Reads the filesystem only.
absl::Status ValidateJobInputs(const v1::JobSpec& spec);

// The stat stamps of a spec's input files (stamped_cache.h): what the checks below and the
// pre-flight estimate key their cached readings on. Empty: the path is unset, or cannot be
// stat'ed (or, for the model folder, listed).
struct InputStamps {
  std::string model;  // FolderStamp(spec.model_path())
  std::string train;  // FileStamp(spec.train_path())
  std::string valid;  // FileStamp(spec.valid_path())
};
InputStamps TakeInputStamps(const v1::JobSpec& spec);

// What ValidateJobInputs found, kept while the files are unchanged: per model folder its
// problems, per data file whether it opens. The Scheduler holds one. Thread-safe.
struct InputCheckCache {
  StampedCache<std::vector<std::string>> model_folders{4};
  StampedCache<bool> data_files{64};
};

// ValidateJobInputs with `stamps` (TakeInputStamps(spec), taken before) and `cache`: the same
// verdict, but a folder or file whose stamp is unchanged is not looked into again (a sweep of
// submits over one model and dataset checks them once). A change the stamps cannot see, such as
// a parent folder's permissions, shows when the worker opens the file.
absl::Status ValidateJobInputs(const v1::JobSpec& spec, const InputStamps& stamps,
                               InputCheckCache& cache);

// The spec with every field that means "the default" set to that default, so that what is
// stored (and leased to a worker) is exactly what runs. Expects a spec that passed
// ValidateJobSpec(). Budget thresholds and policy are filled only when a budget is set.
v1::JobSpec WithDefaults(v1::JobSpec spec);

}  // namespace tuneledger

#endif  // TUNELEDGER_SERVER_CORE_JOB_SPEC_VALIDATOR_H_
