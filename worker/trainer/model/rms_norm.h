// RMSNorm as in Hugging Face LlamaRMSNorm: the statistics in fp32, the output in the input's
// dtype; computed by FusedRmsNorm (fused_ops.h).
//
// Shape legend: B batch, T tokens, D hidden.
//
//   y = weight * x / sqrt(mean(x^2, last dim) + eps)        x [B,T,D] -> y [B,T,D]
//
// The weight [D] is fp32 whatever the base dtype (it is tiny); frozen unless training the base.
//
// Thread safety: none (a torch::nn::Module).
#ifndef TUNELEDGER_WORKER_TRAINER_MODEL_RMS_NORM_H_
#define TUNELEDGER_WORKER_TRAINER_MODEL_RMS_NORM_H_

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <cstdint>

namespace tuneledger::train {

class RmsNormImpl : public torch::nn::Module {
 public:
  RmsNormImpl(int64_t hidden_size, double eps);

  // x [..., D] fp32, bf16 or fp16 -> [..., D] in x's dtype.
  torch::Tensor forward(const torch::Tensor& x);

  torch::Tensor weight;  // [D] fp32

 private:
  double eps_;
};
TORCH_MODULE(RmsNorm);

}  // namespace tuneledger::train

#endif  // TUNELEDGER_WORKER_TRAINER_MODEL_RMS_NORM_H_
