// The worker's on-disk layout, drawn once. These functions are the only place that builds
// paths under a work dir; everything else (agent, attempt runner, local workers, tests) calls
// them.
//
//   <work-dir>/
//     jobs/<job-id>/
//       attempt-<n>/              the trainer's --out for attempt n (1-based)
//         spec.json               the lease's JobSpec (proto JSON, proto field names)
//         train.log               the trainer's stderr (human-readable log)
//         checkpoints/step-<k>/   complete checkpoints (the trainer writes step-<k>.tmp/ first)
//         adapter/                adapter_model.safetensors + adapter_config.json (PEFT)
//     local-workers/<name>/
//       agent.log                 stdout + stderr of a worker started by the server
//                                 (`--local-workers`); all local workers share <work-dir>
//
// All workers of one server must reach the same <work-dir> (one local folder on a single
// machine, a shared volume otherwise): a later attempt resumes from an earlier attempt's
// checkpoint by its absolute path.
//
// Header-only and dependency-free. Thread safety: pure functions.
#ifndef TUNELEDGER_WORKER_AGENT_WORK_DIR_LAYOUT_H_
#define TUNELEDGER_WORKER_AGENT_WORK_DIR_LAYOUT_H_

#include <string>
#include <string_view>

namespace tuneledger::worker::layout {

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

inline std::string CheckpointsDir(const std::string& attempt_dir) {
  return attempt_dir + "/checkpoints";
}

inline std::string CheckpointDir(const std::string& attempt_dir, int step) {
  return CheckpointsDir(attempt_dir) + "/step-" + std::to_string(step);
}

inline std::string AdapterDir(const std::string& attempt_dir) { return attempt_dir + "/adapter"; }

inline std::string LocalWorkerDir(const std::string& work_dir, const std::string& name) {
  return work_dir + "/local-workers/" + name;
}

inline std::string LocalWorkerLogPath(const std::string& work_dir, const std::string& name) {
  return LocalWorkerDir(work_dir, name) + "/agent.log";
}

}  // namespace tuneledger::worker::layout

#endif  // TUNELEDGER_WORKER_AGENT_WORK_DIR_LAYOUT_H_
