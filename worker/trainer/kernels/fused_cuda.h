// Fused CUDA kernels of the decoder's elementwise work, on raw device pointers: RMSNorm, SwiGLU
// and RoPE, forward and backward, each one pass over its tensors instead of torch's chain of
// kernels and temporaries. worker/trainer/model/fused_ops.cc calls them for CUDA tensors and
// holds the CPU reference they are tested against (tests/trainer/model_fused_ops_test.cc, on a
// GPU). Every value is computed in fp32 and rounded once, to nearest even, into the storage
// type.
//
// Shape legend: rows = the product of the leading dims, D hidden (the last dim), F the MLP's
// intermediate size (flattened: n values), B batch, H heads, T tokens, Dh head dim.
//
// No LibTorch and no CUDA headers here, so that the torch side includes this file with the host
// compiler only. Built (fused_cuda.cu) only when CMake's TUNELEDGER_WITH_CUDA is on.
//
// Thread safety: each launch is asynchronous on `stream` (a cudaStream_t; null: the legacy
// default stream); the caller orders it with the tensors' other work. Every function returns
// null, or the CUDA error's text when the launch failed.
#ifndef TUNELEDGER_WORKER_TRAINER_KERNELS_FUSED_CUDA_H_
#define TUNELEDGER_WORKER_TRAINER_KERNELS_FUSED_CUDA_H_

#include <cstdint>

namespace tuneledger::train::kernels {

enum class Storage { kFloat32, kBFloat16, kFloat16 };

// RMSNorm: x, y [rows, D] contiguous of `storage`; weight [D] fp32 (frozen); inv_rms [rows] fp32
// out. inv = 1 / sqrt(mean(x^2) + eps); y = round(round(weight) x round(x inv)), the rounding of
// Hugging Face's `weight * hidden.to(dtype)`.
const char* LaunchRmsNormForward(const void* x, const float* weight, int64_t rows, int64_t dim,
                                 float eps, void* y, float* inv_rms, Storage storage, void* stream);
// grad_x = inv (gn - n mean(gn n)), n = x inv, gn = grad_y round(weight): grad_y, grad_x
// [rows, D] of `storage`.
const char* LaunchRmsNormBackward(const void* grad_y, const void* x, const float* weight,
                                  const float* inv_rms, int64_t rows, int64_t dim, void* grad_x,
                                  Storage storage, void* stream);

// SwiGLU: y = silu(gate) up over n values; backward: grad_gate = grad_y up s (1 + gate (1 - s)),
// grad_up = grad_y silu(gate), s = sigmoid(gate).
const char* LaunchSwiGluForward(const void* gate, const void* up, int64_t n, void* y,
                                Storage storage, void* stream);
const char* LaunchSwiGluBackward(const void* grad_y, const void* gate, const void* up, int64_t n,
                                 void* grad_gate, void* grad_up, Storage storage, void* stream);

// RoPE on x [B,H,T,Dh] with element strides (stride_b, stride_h, stride_t; the last dim
// contiguous), cos / sin [T,Dh] contiguous of `storage`; y [B,H,T,Dh] contiguous.
//   y[d] = x[d] cos[d] + rotate_half(x)[d] sin[d], rotate_half(x) = (-x[Dh/2:], x[:Dh/2])
// backward (same layout rules, grad_y in place of x): grad_x = grad_y cos - rotate_half(grad_y
// sin).
struct RopeShape {
  int64_t batch = 0, heads = 0, tokens = 0, head_dim = 0;
  int64_t stride_b = 0, stride_h = 0, stride_t = 0;
};
const char* LaunchRopeForward(const void* x, const void* cos, const void* sin,
                              const RopeShape& shape, void* y, Storage storage, void* stream);
const char* LaunchRopeBackward(const void* grad_y, const void* cos, const void* sin,
                               const RopeShape& shape, void* grad_x, Storage storage, void* stream);

}  // namespace tuneledger::train::kernels

#endif  // TUNELEDGER_WORKER_TRAINER_KERNELS_FUSED_CUDA_H_
