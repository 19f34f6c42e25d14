// LibTorch's current CUDA stream on a device, as the cudaStream_t (void*) that the raw kernels
// of quant/dequant_cuda.h and kernels/fused_cuda.h take, so that a launch is ordered with the
// tensors' other work on that device.
//
// Thread safety: reads the calling thread's current stream.
#ifndef TUNELEDGER_WORKER_TRAINER_MODEL_CUDA_STREAM_H_
#define TUNELEDGER_WORKER_TRAINER_MODEL_CUDA_STREAM_H_

#include <c10/core/Device.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>

namespace tuneledger::train {

inline void* CurrentCudaStream(const c10::Device& device) {
  return c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA)->getStream(device).native_handle();
}

}  // namespace tuneledger::train

#endif  // TUNELEDGER_WORKER_TRAINER_MODEL_CUDA_STREAM_H_
