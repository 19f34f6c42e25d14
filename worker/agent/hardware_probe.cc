#include "worker/agent/hardware_probe.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "base/child_process.h"
#include "base/log.h"

namespace tuneledger::worker {
namespace {

std::string Hostname() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) return "unknown";
  return name;
}

int64_t HostMemoryBytes() {
  long pages = sysconf(_SC_PHYS_PAGES);
  long page_size = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page_size <= 0) return 0;
  return static_cast<int64_t>(pages) * page_size;
}

std::string GpuModelFromNvidiaSmi(int index) {
  ChildProcessOptions options;
  options.argv = {"nvidia-smi", "--query-gpu=name", "--format=csv,noheader",
                  absl::StrCat("--id=", index)};
  absl::StatusOr<CompletedProcess> result =
      ChildProcess::RunToCompletion(options, absl::Seconds(20));
  if (!result.ok() || !result->status.success()) return "";
  std::vector<std::string> lines = absl::StrSplit(result->stdout_text, '\n');
  return lines.empty() ? "" : std::string(absl::StripAsciiWhitespace(lines[0]));
}

// /proc/driver/nvidia/gpus/<pci-id>/information has "Model: NVIDIA H200" (any GPU: the PCI
// order need not match CUDA's, but one machine usually has one model).
std::string GpuModelFromProc() {
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/driver/nvidia/gpus", error)) {
    std::ifstream in(entry.path() / "information");
    std::string text;
    while (std::getline(in, text)) {
      absl::string_view line = text;
      if (absl::ConsumePrefix(&line, "Model:")) {
        return std::string(absl::StripAsciiWhitespace(line));
      }
    }
  }
  return "";
}

}  // namespace

absl::StatusOr<std::vector<int>> ParseGpuList(absl::string_view list) {
  std::vector<int> indices;
  std::set<int> seen;
  for (absl::string_view entry : absl::StrSplit(list, ',')) {
    entry = absl::StripAsciiWhitespace(entry);
    int index = -1;
    if (!absl::SimpleAtoi(entry, &index) || index < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--gpus: \"", entry, "\" is not a GPU index (want e.g. 0,1)"));
    }
    if (!seen.insert(index).second) {
      return absl::InvalidArgumentError(absl::StrCat("--gpus: GPU ", index, " listed twice"));
    }
    indices.push_back(index);
  }
  return indices;
}

HardwareInfo ProbeHardware(const std::vector<int>& gpu_indices) {
  HardwareInfo info;
  info.hostname = Hostname();
  info.memory_bytes = HostMemoryBytes();
  if (gpu_indices.empty()) {
    info.accelerator = "cpu";
    info.gpus = 1;
    return info;
  }
  info.gpus = static_cast<int>(gpu_indices.size());
  info.accelerator = GpuModelFromNvidiaSmi(gpu_indices.front());
  if (info.accelerator.empty()) info.accelerator = GpuModelFromProc();
  if (info.accelerator.empty()) {
    TL_LOG(WARNING) << "could not tell the GPU model (no nvidia-smi, no /proc/driver/nvidia)";
    info.accelerator = "gpu";
  }
  return info;
}

}  // namespace tuneledger::worker
