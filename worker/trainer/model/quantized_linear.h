// Quantized frozen base weights (QLoRA, lora.quantize_base): a projection's [out,in] weight
// stored packed, dequantized to the compute dtype inside its GEMM.
//
// Shape legend: B batch, T tokens, in / out the projection's features; "..." any leading dims.
//
//   NF4  data   uint8 [ceil(out*in / 2)]   two 4-bit code indexes a byte (high nibble first)
//        scales fp32  [ceil(out*in / 64)]  the absmax of each block of 64 values (row-major)
//   NF4-DQ data as NF4; double quantization (block_quant.h) of the absmax:
//        scales int8  [n_blocks = ceil(out*in / 64)]  the absmax codes q
//        absmax_scales fp32 [ceil(n_blocks / 256)], absmax_offset c: absmax~ = max(0, q s + c)
//   INT8 data   int8  [out,in]
//        scales fp32  [out]                absmax / 127 of each row
//
//   W~ = Dequantize(data, scales)            [out,in], code[index] x absmax / q x scale in fp32
//   y  = x W~^T + b                           [...,out]; backward: dx = dy W~ (W~ made again)
//
// Quantization is block_quant.h's CPU reference itself (done once, at load). Dequantization has
// a plain reference (DequantizeWeightReference: torch ops, any device, equal to block_quant's
// DequantizeNf4 / DequantizeInt8Rows bit for bit) and a fast path (a CUDA kernel,
// quant/dequant_cuda.cu, for CUDA tensors when built with TUNELEDGER_WITH_CUDA) that tests hold
// to the reference value for value. QuantizedLinear is its own autograd function so that a
// forward keeps only the packed weight for backward, never the dequantized one: otherwise every
// layer's full weight would stay alive until backward and the memory QLoRA saves would be gone.
//
// Thread safety: pure functions.
#ifndef TUNELEDGER_WORKER_TRAINER_MODEL_QUANTIZED_LINEAR_H_
#define TUNELEDGER_WORKER_TRAINER_MODEL_QUANTIZED_LINEAR_H_

#include <torch/types.h>

#include <cstdint>

#include "worker/trainer/quant/block_quant.h"

namespace tuneledger::train {

struct QuantizedWeight {
  quant::BaseQuantization scheme = quant::BaseQuantization::kNone;
  int64_t rows = 0;  // out
  int64_t cols = 0;  // in
  int block_size = quant::kNf4DefaultBlockSize;
  torch::Tensor data;           // see the legend
  torch::Tensor scales;         // see the legend
  torch::Tensor absmax_scales;  // NF4-DQ only (else undefined), see the legend
  float absmax_offset = 0;      // NF4-DQ only

  bool defined() const { return scheme != quant::BaseQuantization::kNone; }
  // Bytes of data, scales, absmax_scales and absmax_offset: what the weight occupies instead of
  // out x in x dtype bytes.
  int64_t bytes() const;
  // The same weight with its tensors on `device`.
  QuantizedWeight to(const torch::Device& device) const;
};

// Quantizes weight [out,in] (any float dtype, any device; converted to fp32 on the CPU first)
// with block_quant's reference; the result is on weight's device. TrainError for kNone, a
// non-2-D weight or a non-finite value.
QuantizedWeight QuantizeWeight(const torch::Tensor& weight, quant::BaseQuantization scheme);

// W~ [out,in] in `dtype` with torch ops on the tensors' device: the reference.
torch::Tensor DequantizeWeightReference(const QuantizedWeight& weight, torch::Dtype dtype);
// W~ [out,in] in `dtype`: the CUDA kernel for CUDA tensors (when built with CUDA), else the
// reference.
torch::Tensor DequantizeWeight(const QuantizedWeight& weight, torch::Dtype dtype);
#if TUNELEDGER_WITH_CUDA
// The CUDA kernel alone (tests compare it with the reference); TrainError for CPU tensors.
torch::Tensor DequantizeWeightCuda(const QuantizedWeight& weight, torch::Dtype dtype);
#endif

// x [..., in] -> [..., out] in x's dtype, as BaseLinear (lora_linear.h) with W~ in
// `compute_dtype`, except that fp32 activations on CPU make W~ in fp32 directly. bias [out]
// (undefined: none) is frozen (no gradient flows to it) and added in x's dtype.
torch::Tensor QuantizedLinear(const torch::Tensor& x, const QuantizedWeight& weight,
                              const torch::Tensor& bias, torch::Dtype compute_dtype);

}  // namespace tuneledger::train

#endif  // TUNELEDGER_WORKER_TRAINER_MODEL_QUANTIZED_LINEAR_H_
