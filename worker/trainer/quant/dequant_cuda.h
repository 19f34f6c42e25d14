// The CUDA dequantization kernels of the quantized base weights (QLoRA), on raw device pointers:
// what worker/trainer/model/quantized_linear.cc calls inside a quantized projection's GEMM path
// for CUDA tensors. They reproduce block_quant.h's reference value for value: each output is
// one fp32 product, code[index] x absmax (NF4) or q x scale (INT8), then rounded to nearest even
// into the output type (as torch's .to() rounds); tests/trainer/model_quantized_linear_test.cc
// checks them against the reference on a GPU.
//
// No LibTorch and no CUDA headers here, so that the torch side includes this file with the host
// compiler only. Built (dequant_cuda.cu) only when CMake's TUNELEDGER_WITH_CUDA is on.
//
// Thread safety: each launch is asynchronous on `stream` (a cudaStream_t; null: the legacy
// default stream); the caller orders it with the tensors' other work.
#ifndef TUNELEDGER_WORKER_TRAINER_QUANT_DEQUANT_CUDA_H_
#define TUNELEDGER_WORKER_TRAINER_QUANT_DEQUANT_CUDA_H_

#include <cstdint>

namespace tuneledger::train::quant {

enum class DequantOutput { kFloat32, kBFloat16, kFloat16 };

// packed: ceil(numel / 2) bytes (earlier value in the high nibble); absmax: ceil(numel /
// block_size) fp32; out: numel values of `output` type. All device pointers. Returns null, or
// the CUDA error's text when the launch failed.
const char* LaunchDequantizeNf4(const uint8_t* packed, const float* absmax, int64_t numel,
                                int block_size, void* out, DequantOutput output, void* stream);

// NF4 with double-quantized absmax (block_quant.h's QuantizedAbsmax): absmax_codes int8
// [ceil(numel / block_size)], absmax_scales fp32 [ceil(codes / absmax_block_size)], and the
// codes' offset; each block's absmax~ = max(0, code x scale + offset), made in the kernel.
const char* LaunchDequantizeNf4DoubleQuant(const uint8_t* packed, const int8_t* absmax_codes,
                                           const float* absmax_scales, float absmax_offset,
                                           int absmax_block_size, int64_t numel, int block_size,
                                           void* out, DequantOutput output, void* stream);

// values: rows x cols int8, row-major; scales: rows fp32; out: rows x cols of `output` type.
const char* LaunchDequantizeInt8Rows(const int8_t* values, const float* scales, int64_t rows,
                                     int64_t cols, void* out, DequantOutput output, void* stream);

}  // namespace tuneledger::train::quant

#endif  // TUNELEDGER_WORKER_TRAINER_QUANT_DEQUANT_CUDA_H_
