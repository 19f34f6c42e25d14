// The fused RMSNorm, SwiGLU and RoPE (worker/trainer/model/fused_ops.h) against their plain
// references under autograd: on the CPU (the same formulas as torch ops, with a hand-written
// backward), and, on a GPU only, the CUDA kernels (worker/trainer/kernels/fused_cuda.cu)
// against the CPU reference in fp32, bf16 and fp16.
//
// Shape legend: B batch, T tokens, D hidden, F intermediate, H heads, Dh head dim.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include "tests/trainer/model_test_support.h"
#include "worker/trainer/model/fused_ops.h"
#include "worker/trainer/model/rotary_embedding.h"

namespace tuneledger::train {
namespace {

using model_test::TensorsClose;

// The output and the input gradients of `op` for upstream gradient `grad`, on copies of
// `inputs` placed on `device` (each requiring grad).
struct Result {
  torch::Tensor output;
  std::vector<torch::Tensor> grads;
};

Result OutputAndGradients(const std::function<torch::Tensor(const std::vector<torch::Tensor>&)>& op,
                          const std::vector<torch::Tensor>& inputs, const torch::Tensor& grad,
                          const torch::Device& device) {
  std::vector<torch::Tensor> leaves;
  for (const torch::Tensor& input : inputs) {
    leaves.push_back(input.detach().to(device).requires_grad_(true));
  }
  torch::Tensor output = op(leaves);
  Result result;
  result.grads = torch::autograd::grad({output}, leaves, {grad.to(device)});
  result.output = output.detach().cpu();
  for (torch::Tensor& g : result.grads) g = g.cpu();
  return result;
}

// Largest |expected - actual| relative to the largest |expected|.
::testing::AssertionResult RelativelyClose(const torch::Tensor& expected,
                                           const torch::Tensor& actual, double tolerance) {
  const double scale = expected.to(torch::kFloat64).abs().max().item<double>();
  return TensorsClose(expected, actual, tolerance * (scale > 0 ? scale : 1.0));
}

// Tolerance per dtype for fused-vs-reference: the same rounding points, in other orders.
double Tolerance(torch::Dtype dtype) {
  if (dtype == torch::kBFloat16) return 2e-2;
  if (dtype == torch::kFloat16) return 4e-3;
  return 1e-5;
}

void ExpectAgree(const Result& reference, const Result& fused, torch::Dtype dtype,
                 bool same_forward) {
  EXPECT_EQ(fused.output.scalar_type(), dtype);
  if (same_forward) {
    EXPECT_TRUE(TensorsClose(reference.output, fused.output, 0.0));
  } else {
    EXPECT_TRUE(RelativelyClose(reference.output, fused.output, Tolerance(dtype)));
  }
  ASSERT_EQ(reference.grads.size(), fused.grads.size());
  for (size_t i = 0; i < reference.grads.size(); ++i) {
    EXPECT_EQ(fused.grads[i].scalar_type(), dtype) << "input " << i;
    EXPECT_TRUE(RelativelyClose(reference.grads[i], fused.grads[i], Tolerance(dtype)))
        << "input " << i;
  }
}

struct Case {
  std::string name;
  std::function<torch::Tensor(const std::vector<torch::Tensor>&)> fused;
  std::function<torch::Tensor(const std::vector<torch::Tensor>&)> reference;
  std::vector<torch::Tensor> inputs;  // fp32, cast per dtype
  std::vector<int64_t> output_shape;
};

// x [B,H,T,Dh] as the attention makes it: a transposed view of [B,T,H,Dh].
torch::Tensor TransposedHeads(const torch::Tensor& x) { return x.transpose(1, 2); }

std::vector<Case> Cases(torch::Dtype dtype) {
  torch::manual_seed(70);
  const torch::Tensor norm_weight = 1 + 0.3 * torch::randn({32});  // [D] fp32, frozen
  RotaryEmbedding rotary(/*head_dim=*/8, /*rope_theta=*/10000.0);
  auto [cos, sin] = rotary.CosSin(/*num_tokens=*/6, torch::kCPU);  // [T,Dh] fp32
  std::vector<Case> cases;
  cases.push_back({"rms_norm",
                   [norm_weight](const std::vector<torch::Tensor>& in) {
                     return FusedRmsNorm(in[0], norm_weight.to(in[0].device()), 1e-5);
                   },
                   [norm_weight](const std::vector<torch::Tensor>& in) {
                     return ReferenceRmsNorm(in[0], norm_weight.to(in[0].device()), 1e-5);
                   },
                   {2 * torch::randn({3, 5, 32})},
                   {3, 5, 32}});
  cases.push_back(
      {"swiglu",
       [](const std::vector<torch::Tensor>& in) { return FusedSwiGlu(in[0], in[1]); },
       [](const std::vector<torch::Tensor>& in) { return ReferenceSwiGlu(in[0], in[1]); },
       {3 * torch::randn({3, 5, 48}), torch::randn({3, 5, 48})},
       {3, 5, 48}});
  cases.push_back({"rope",
                   [cos, sin, dtype](const std::vector<torch::Tensor>& in) {
                     return FusedRotary(TransposedHeads(in[0]), cos.to(in[0].device(), dtype),
                                        sin.to(in[0].device(), dtype));
                   },
                   [cos, sin, dtype](const std::vector<torch::Tensor>& in) {
                     return ApplyRotary(TransposedHeads(in[0]), cos.to(in[0].device(), dtype),
                                        sin.to(in[0].device(), dtype));
                   },
                   {torch::randn({2, 6, 4, 8})},  // [B,T,H,Dh]
                   {2, 4, 6, 8}});
  for (Case& c : cases) {
    for (torch::Tensor& input : c.inputs) input = input.to(dtype);
  }
  return cases;
}

class FusedOpsTest : public ::testing::TestWithParam<torch::Dtype> {};

INSTANTIATE_TEST_SUITE_P(Dtypes, FusedOpsTest,
                         ::testing::Values(torch::kFloat32, torch::kBFloat16, torch::kFloat16));

// On the CPU the forward is the reference formula itself (bit-equal); the hand-written backward
// agrees with autograd's within the dtype's rounding.
TEST_P(FusedOpsTest, CpuForwardEqualsTheReferenceAndBackwardAgrees) {
  const torch::Dtype dtype = GetParam();
  for (const Case& c : Cases(dtype)) {
    SCOPED_TRACE(c.name + " " + c10::toString(dtype));
    const torch::Tensor grad = torch::randn(c.output_shape).to(dtype);
    const Result reference = OutputAndGradients(c.reference, c.inputs, grad, torch::kCPU);
    const Result fused = OutputAndGradients(c.fused, c.inputs, grad, torch::kCPU);
    ExpectAgree(reference, fused, dtype, /*same_forward=*/true);
    // The comparison can fail: another upstream gradient moves the input gradients far.
    const Result other = OutputAndGradients(c.fused, c.inputs, -grad, torch::kCPU);
    EXPECT_FALSE(RelativelyClose(reference.grads[0], other.grads[0], 0.5));
  }
}

// The CUDA kernels against the CPU reference on the same (rounded) inputs.
TEST_P(FusedOpsTest, CudaKernelsAgreeWithTheCpuReference) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const torch::Dtype dtype = GetParam();
  for (const Case& c : Cases(dtype)) {
    SCOPED_TRACE(c.name + " " + c10::toString(dtype));
    const torch::Tensor grad = torch::randn(c.output_shape).to(dtype);
    const Result reference = OutputAndGradients(c.reference, c.inputs, grad, torch::kCPU);
    const Result fused =
        OutputAndGradients(c.fused, c.inputs, grad, torch::Device(torch::kCUDA, 0));
    ExpectAgree(reference, fused, dtype, /*same_forward=*/false);
  }
}

// Full fine-tuning trains the norm weights: the fused norm then runs the reference, so the
// weight gets its gradient.
TEST(FusedRmsNormTest, ATrainableWeightGetsItsGradient) {
  torch::manual_seed(71);
  const torch::Tensor x = torch::randn({4, 16}, torch::requires_grad());  // [rows,D]
  const torch::Tensor weight = torch::randn({16}).requires_grad_(true);   // [D]
  const torch::Tensor reference_weight = weight.detach().clone().requires_grad_(true);
  FusedRmsNorm(x, weight, 1e-6).sum().backward();
  ReferenceRmsNorm(x.detach(), reference_weight, 1e-6).sum().backward();
  ASSERT_TRUE(weight.grad().defined());
  EXPECT_TRUE(TensorsClose(reference_weight.grad(), weight.grad(), 1e-6));
}

}  // namespace
}  // namespace tuneledger::train
