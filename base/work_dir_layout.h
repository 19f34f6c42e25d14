// The worker's on-disk layout, drawn once. These functions are the only place that builds
// paths under a work dir; everything else (server's local workers, worker agent, attempt
// runner, the trainer under its --out folder, tests) calls them.
//
//   <work-dir>/
//     jobs/<job-id>/
//       attempt-<n>/              the trainer's --out for attempt n (1-based)
//         spec.json               the lease's JobSpec (proto JSON, proto field names)
//         train.log               the trainer's stderr (human-readable log)
//         train-rank<r>.log       a data-parallel rank r > 0's stderr, on the worker running it
//         checkpoints/step-<k>/   complete checkpoints (the trainer writes step-<k>.tmp/ first,
//                                 worker/trainer/recipe/checkpoint_io.h)
//         adapter/                adapter_model.safetensors + adapter_config.json (PEFT)
//           COST.md               the job's cost card, written by the worker agent from the
//                                 server's FinishAttempt answer (server/core/cost_card.h)
//         data_selection.jsonl    per training example: score, kept (training.data_selection)
//         merged/                 the merged full model, when the spec asks for it
//     local-workers/<name>/
//       agent.log                 stdout + stderr of a worker started by the server
//                                 (`--local-workers`); all local workers share <work-dir>
//
// All workers of one server must reach the same <work-dir> (one local folder on a single
// machine, a shared volume otherwise): a later attempt resumes from an earlier attempt's
// checkpoint by its absolute path.
//
// The trainer is handed an attempt folder as --out; everything below attempt-<n>/ is built from
// it with the functions taking `attempt_dir`.
//
// Header-only and dependency-free (the trainer links no Abseil). Thread safety: pure functions.
#ifndef TUNELEDGER_BASE_WORK_DIR_LAYOUT_H_
#define TUNELEDGER_BASE_WORK_DIR_LAYOUT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tuneledger::layout {

// True when name may be used as one path component: non-empty, at most 128 characters of
// [A-Za-z0-9._-], and not "." or "..". Job ids and local worker names are checked with it
// before they become folders.
inline bool IsSafePathComponent(std::string_view name) {
  if (name.empty() || name.size() > 128 || name == "." || name == "..") return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

inline std::string JobDir(const std::string& work_dir, const std::string& job_id) {
  return work_dir + "/jobs/" + job_id;
}

inline std::string AttemptDir(const std::string& work_dir, const std::string& job_id, int attempt) {
  return JobDir(work_dir, job_id) + "/attempt-" + std::to_string(attempt);
}

inline std::string SpecPath(const std::string& attempt_dir) { return attempt_dir + "/spec.json"; }

inline std::string TrainLogPath(const std::string& attempt_dir) {
  return attempt_dir + "/train.log";
}

inline std::string RankLogPath(const std::string& attempt_dir, int rank) {
  return attempt_dir + "/train-rank" + std::to_string(rank) + ".log";
}

inline std::string CheckpointsDir(const std::string& attempt_dir) {
  return attempt_dir + "/checkpoints";
}

// The folder name of the complete checkpoint after `step` optimizer steps, and of the one being
// written.
inline std::string CheckpointDirName(int64_t step) { return "step-" + std::to_string(step); }
inline std::string CheckpointTmpDirName(int64_t step) { return CheckpointDirName(step) + ".tmp"; }

// k of a "step-<k>" folder name (k: 1 to 18 decimal digits); nullopt for any other name,
// "step-<k>.tmp" included.
inline std::optional<int64_t> StepOfCheckpointDirName(std::string_view name) {
  constexpr std::string_view kPrefix = "step-";
  if (name.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  const std::string_view digits = name.substr(kPrefix.size());
  if (digits.empty() || digits.size() > 18) return std::nullopt;
  int64_t step = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    step = step * 10 + (c - '0');
  }
  return step;
}

inline std::string CheckpointDir(const std::string& attempt_dir, int64_t step) {
  return CheckpointsDir(attempt_dir) + "/" + CheckpointDirName(step);
}

inline std::string AdapterDir(const std::string& attempt_dir) { return attempt_dir + "/adapter"; }

inline std::string CostCardPath(const std::string& adapter_dir) { return adapter_dir + "/COST.md"; }

inline std::string MergedModelDir(const std::string& attempt_dir) {
  return attempt_dir + "/merged";
}

inline std::string DataSelectionPath(const std::string& attempt_dir) {
  return attempt_dir + "/data_selection.jsonl";
}

inline std::string LocalWorkerDir(const std::string& work_dir, const std::string& name) {
  return work_dir + "/local-workers/" + name;
}

inline std::string LocalWorkerLogPath(const std::string& work_dir, const std::string& name) {
  return LocalWorkerDir(work_dir, name) + "/agent.log";
}

}  // namespace tuneledger::layout

#endif  // TUNELEDGER_BASE_WORK_DIR_LAYOUT_H_
