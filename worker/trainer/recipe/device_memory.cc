#include "worker/trainer/recipe/device_memory.h"

#if defined(TUNELEDGER_WITH_CUDA)
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace tuneledger::train {

std::optional<double> PeakDeviceMemoryMib(const c10::Device& device) {
#if defined(TUNELEDGER_WITH_CUDA)
  if (device.is_cuda()) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
    const auto& aggregate =
        stats.allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)];
    return static_cast<double>(aggregate.peak) / (1024.0 * 1024.0);
  }
#endif
  return std::nullopt;
}

}  // namespace tuneledger::train
