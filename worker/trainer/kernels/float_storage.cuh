// Device-side conversions between fp32 and the storage types of the trainer's CUDA kernels
// (kernels/fused_cuda.cu, quant/dequant_cuda.cu): float, __nv_bfloat16 and __half, rounding to
// nearest even as torch's .to() does. nvcc only (included by .cu files).
#ifndef TUNELEDGER_WORKER_TRAINER_KERNELS_FLOAT_STORAGE_CUH_
#define TUNELEDGER_WORKER_TRAINER_KERNELS_FLOAT_STORAGE_CUH_

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace tuneledger::train::kernels {

template <typename T>
__device__ inline float ToFloat(T value);
template <>
__device__ inline float ToFloat<float>(float value) {
  return value;
}
template <>
__device__ inline float ToFloat<__nv_bfloat16>(__nv_bfloat16 value) {
  return __bfloat162float(value);
}
template <>
__device__ inline float ToFloat<__half>(__half value) {
  return __half2float(value);
}

template <typename T>
__device__ inline T FromFloat(float value);
template <>
__device__ inline float FromFloat<float>(float value) {
  return value;
}
template <>
__device__ inline __nv_bfloat16 FromFloat<__nv_bfloat16>(float value) {
  return __float2bfloat16_rn(value);
}
template <>
__device__ inline __half FromFloat<__half>(float value) {
  return __float2half_rn(value);
}

// `value` rounded to T and back: what torch holds after an op whose output is T.
template <typename T>
__device__ inline float Round(float value) {
  return ToFloat<T>(FromFloat<T>(value));
}

}  // namespace tuneledger::train::kernels

#endif  // TUNELEDGER_WORKER_TRAINER_KERNELS_FLOAT_STORAGE_CUH_
