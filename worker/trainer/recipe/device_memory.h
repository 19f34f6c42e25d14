// Peak device memory of the trainer's process, as LibTorch's CUDA caching allocator counts it
// (bytes handed to tensors at their highest, the number torch.cuda.max_memory_allocated()
// reports in Python), so that bench/ compares tuneledger and PyTorch programs on one measure.
//
// Thread safety: reads the allocator's own (locked) statistics.
#ifndef TUNELEDGER_WORKER_TRAINER_RECIPE_DEVICE_MEMORY_H_
#define TUNELEDGER_WORKER_TRAINER_RECIPE_DEVICE_MEMORY_H_

#include <c10/core/Device.h>

#include <optional>

namespace tuneledger::train {

// MiB at the peak since the process started; nullopt on CPU or in a build without CUDA.
std::optional<double> PeakDeviceMemoryMib(const c10::Device& device);

}  // namespace tuneledger::train

#endif  // TUNELEDGER_WORKER_TRAINER_RECIPE_DEVICE_MEMORY_H_
