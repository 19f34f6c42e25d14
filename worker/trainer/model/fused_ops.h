// Fused RMSNorm, SwiGLU and RoPE: autograd functions that keep only what their backward needs
// and, for CUDA tensors, run kernels/fused_cuda.h's one-pass kernels; on the CPU they compute
// the same formulas with torch ops. Each has a plain reference (torch ops under autograd) that
// tests/trainer/model_fused_ops_test.cc compares it with: on the CPU, and kernel against CPU
// reference on a GPU.
//
// Shape legend: B batch, T tokens, D hidden, F intermediate, H heads, Dh head dim; "..." any
// leading dims.
//
//   RMSNorm  y = round(weight) * round(x / sqrt(mean(x^2) + eps)), the statistics in fp32, the
//            output in x's dtype (Hugging Face's rounding). Saves x and 1/rms [...] fp32
//            (autograd on the formula keeps an fp32 copy of x for low-precision x).
//   SwiGLU   y = silu(gate) * up. Saves gate and up (autograd also keeps silu(gate)).
//   RoPE     y = x * cos + rotate_half(x) * sin (rotary_embedding.h). Saves cos and sin only.
//
// The norm's weight is frozen in LoRA; when it requires grad (full fine-tuning) FusedRmsNorm
// runs the reference, so that its gradient flows.
//
// Thread safety: pure functions.
#ifndef TUNELEDGER_WORKER_TRAINER_MODEL_FUSED_OPS_H_
#define TUNELEDGER_WORKER_TRAINER_MODEL_FUSED_OPS_H_

#include <torch/types.h>

namespace tuneledger::train {

// x [...,D] fp32/bf16/fp16, weight [D] fp32 -> [...,D] in x's dtype.
torch::Tensor FusedRmsNorm(const torch::Tensor& x, const torch::Tensor& weight, double eps);
torch::Tensor ReferenceRmsNorm(const torch::Tensor& x, const torch::Tensor& weight, double eps);

// gate, up [...,F] of one dtype -> [...,F].
torch::Tensor FusedSwiGlu(const torch::Tensor& gate, const torch::Tensor& up);
torch::Tensor ReferenceSwiGlu(const torch::Tensor& gate, const torch::Tensor& up);

// x [B,H,T,Dh] (any strides), cos / sin [T,Dh] in x's dtype -> [B,H,T,Dh]. The reference is
// ApplyRotary (rotary_embedding.h).
torch::Tensor FusedRotary(const torch::Tensor& x, const torch::Tensor& cos,
                          const torch::Tensor& sin);

}  // namespace tuneledger::train

#endif  // TUNELEDGER_WORKER_TRAINER_MODEL_FUSED_OPS_H_
