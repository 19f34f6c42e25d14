// Shape legend: numel the weight's element count ([out,in] flattened row-major), rows / cols
// the INT8 matrix's [out,in].
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "worker/trainer/kernels/float_storage.cuh"
#include "worker/trainer/quant/dequant_cuda.h"
#include "worker/trainer/quant/nf4_codebook.h"

namespace tuneledger::train::quant {
namespace {

using kernels::FromFloat;

constexpr int kThreads = 256;

// nf4_codebook.h's values, in constant memory.
__constant__ float kNf4Codes[16] = {
    kNf4Codebook[0],  kNf4Codebook[1],  kNf4Codebook[2],  kNf4Codebook[3],
    kNf4Codebook[4],  kNf4Codebook[5],  kNf4Codebook[6],  kNf4Codebook[7],
    kNf4Codebook[8],  kNf4Codebook[9],  kNf4Codebook[10], kNf4Codebook[11],
    kNf4Codebook[12], kNf4Codebook[13], kNf4Codebook[14], kNf4Codebook[15]};

// A block's absmax, stored as fp32.
struct StoredAbsmax {
  const float* __restrict__ absmax;
  __device__ float operator()(int64_t block) const { return absmax[block]; }
};

// A block's absmax~ from its 8-bit code (block_quant.h's DequantizeAbsmax): the product rounded,
// then the sum, never contracted into one fma.
struct CodedAbsmax {
  const int8_t* __restrict__ codes;
  const float* __restrict__ scales;
  float offset;
  int block_size;
  __device__ float operator()(int64_t block) const {
    const float product = __fmul_rn(static_cast<float>(codes[block]), scales[block / block_size]);
    return fmaxf(0.0f, __fadd_rn(product, offset));
  }
};

// One thread per packed byte: its two values. block_size is even, so both share one absmax.
template <typename T, typename Absmax>
__global__ void DequantizeNf4Kernel(const uint8_t* __restrict__ packed, Absmax absmax_of,
                                    int64_t numel, int block_size, T* __restrict__ out) {
  const int64_t byte = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t first = byte * 2;
  if (first >= numel) return;
  const uint8_t pair = packed[byte];
  const float absmax = absmax_of(first / block_size);
  // __fmul_rn: one rounded product, never contracted into anything else.
  out[first] = FromFloat<T>(__fmul_rn(kNf4Codes[pair >> 4], absmax));
  if (first + 1 < numel) out[first + 1] = FromFloat<T>(__fmul_rn(kNf4Codes[pair & 0x0F], absmax));
}

template <typename T>
__global__ void DequantizeInt8RowsKernel(const int8_t* __restrict__ values,
                                         const float* __restrict__ scales, int64_t rows,
                                         int64_t cols, T* __restrict__ out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows * cols) return;
  out[i] = FromFloat<T>(__fmul_rn(static_cast<float>(values[i]), scales[i / cols]));
}

unsigned int Blocks(int64_t threads_needed) {
  return static_cast<unsigned int>((threads_needed + kThreads - 1) / kThreads);
}

const char* LastLaunchError() {
  const cudaError_t error = cudaGetLastError();
  return error == cudaSuccess ? nullptr : cudaGetErrorString(error);
}

template <typename Absmax>
const char* LaunchNf4(const uint8_t* packed, Absmax absmax, int64_t numel, int block_size,
                      void* out, DequantOutput output, void* stream) {
  if (numel <= 0) return nullptr;
  const unsigned int blocks = Blocks((numel + 1) / 2);
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  switch (output) {
    case DequantOutput::kFloat32:
      DequantizeNf4Kernel<<<blocks, kThreads, 0, s>>>(packed, absmax, numel, block_size,
                                                      static_cast<float*>(out));
      break;
    case DequantOutput::kBFloat16:
      DequantizeNf4Kernel<<<blocks, kThreads, 0, s>>>(packed, absmax, numel, block_size,
                                                      static_cast<__nv_bfloat16*>(out));
      break;
    case DequantOutput::kFloat16:
      DequantizeNf4Kernel<<<blocks, kThreads, 0, s>>>(packed, absmax, numel, block_size,
                                                      static_cast<__half*>(out));
      break;
  }
  return LastLaunchError();
}

}  // namespace

const char* LaunchDequantizeNf4(const uint8_t* packed, const float* absmax, int64_t numel,
                                int block_size, void* out, DequantOutput output, void* stream) {
  return LaunchNf4(packed, StoredAbsmax{absmax}, numel, block_size, out, output, stream);
}

const char* LaunchDequantizeNf4DoubleQuant(const uint8_t* packed, const int8_t* absmax_codes,
                                           const float* absmax_scales, float absmax_offset,
                                           int absmax_block_size, int64_t numel, int block_size,
                                           void* out, DequantOutput output, void* stream) {
  return LaunchNf4(packed,
                   CodedAbsmax{absmax_codes, absmax_scales, absmax_offset, absmax_block_size},
                   numel, block_size, out, output, stream);
}

const char* LaunchDequantizeInt8Rows(const int8_t* values, const float* scales, int64_t rows,
                                     int64_t cols, void* out, DequantOutput output, void* stream) {
  if (rows <= 0 || cols <= 0) return nullptr;
  const unsigned int blocks = Blocks(rows * cols);
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  switch (output) {
    case DequantOutput::kFloat32:
      DequantizeInt8RowsKernel<<<blocks, kThreads, 0, s>>>(values, scales, rows, cols,
                                                           static_cast<float*>(out));
      break;
    case DequantOutput::kBFloat16:
      DequantizeInt8RowsKernel<<<blocks, kThreads, 0, s>>>(values, scales, rows, cols,
                                                           static_cast<__nv_bfloat16*>(out));
      break;
    case DequantOutput::kFloat16:
      DequantizeInt8RowsKernel<<<blocks, kThreads, 0, s>>>(values, scales, rows, cols,
                                                           static_cast<__half*>(out));
      break;
  }
  return LastLaunchError();
}

}  // namespace tuneledger::train::quant
