// What a worker tells the server about its machine at registration (WorkerInfo): hostname,
// accelerator model and count (or "cpu"), memory.
// Thread safety: free functions; ProbeHardware runs nvidia-smi as a child when GPUs are given.
#ifndef TUNELEDGER_WORKER_AGENT_HARDWARE_PROBE_H_
#define TUNELEDGER_WORKER_AGENT_HARDWARE_PROBE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tuneledger::worker {

struct HardwareInfo {
  std::string hostname;
  std::string accelerator;   // "cpu", or the GPU model name ("NVIDIA H200"), or "gpu" if unknown
  int gpus = 1;              // 1 for a CPU agent
  int64_t memory_bytes = 0;  // host memory
};

// Parses --gpus: comma-separated, distinct, non-negative CUDA device indices ("0,1").
// INVALID_ARGUMENT naming the bad entry otherwise.
absl::StatusOr<std::vector<int>> ParseGpuList(absl::string_view list);

// Empty gpu_indices: a CPU agent. Otherwise the model of the first listed GPU, from
// nvidia-smi (then /proc/driver/nvidia), "gpu" if neither says.
HardwareInfo ProbeHardware(const std::vector<int>& gpu_indices);

}  // namespace tuneledger::worker

#endif  // TUNELEDGER_WORKER_AGENT_HARDWARE_PROBE_H_
