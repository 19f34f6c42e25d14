// The loss's fast path (hidden states x lm_head in chunks, only rows with a target, logits
// recomputed in backward) against the plain cross-entropy on full logits: same loss and the same
// gradients in fp32, for the hidden states and, in full training, for the lm_head weight.
//
// Shape legend: B batch, T tokens, D hidden, V vocab.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>

#include "lm/data/jsonl_dataset.h"
#include "worker/trainer/recipe/causal_lm_loss.h"

namespace tuneledger::train {
namespace {

struct Grads {
  torch::Tensor loss;
  torch::Tensor hidden;
  torch::Tensor weight;  // undefined unless the weight requires grad
};

// labels [B,T] with about a third ignored, the last position of each row included.
torch::Tensor Labels(int64_t batch, int64_t tokens, int64_t vocab) {
  torch::Tensor labels = torch::randint(0, vocab, {batch, tokens}, torch::kInt64);  // [B,T]
  torch::Tensor ignored = torch::rand({batch, tokens}) < 0.33;
  return labels.masked_fill(ignored, kIgnoreLabel);
}

Grads LossAndGradients(bool chunked, const torch::Tensor& hidden_value,
                       const torch::Tensor& weight_value, const torch::Tensor& labels,
                       bool weight_grad, int64_t chunk_elements) {
  torch::Tensor hidden = hidden_value.clone().requires_grad_(true);         // [B,T,D]
  torch::Tensor weight = weight_value.clone().requires_grad_(weight_grad);  // [V,D]
  torch::Tensor loss = chunked
                           ? CausalLmLossSum(hidden, weight, labels, chunk_elements)
                           : CausalLmLossSumFromLogits(torch::matmul(hidden, weight.t()), labels);
  (loss * 0.37).backward();  // an upstream scale, as the recipe's 1/targets
  return {loss.detach(), hidden.grad(), weight_grad ? weight.grad() : torch::Tensor()};
}

void ExpectClose(const std::string& what, const torch::Tensor& expected,
                 const torch::Tensor& actual, double tolerance) {
  ASSERT_EQ(expected.sizes(), actual.sizes()) << what;
  const double diff =
      (expected.to(torch::kFloat64) - actual.to(torch::kFloat64)).abs().max().item<double>();
  EXPECT_LE(diff, tolerance) << what << ": max |expected - actual| = " << diff;
}

TEST(CausalLmLossTest, ChunkedPathMatchesThePlainLossAndGradientsInFp32) {
  torch::manual_seed(3);
  const int64_t B = 3, T = 17, D = 24, V = 53;
  const torch::Tensor hidden = torch::randn({B, T, D});     // [B,T,D]
  const torch::Tensor weight = torch::randn({V, D}) * 0.3;  // [V,D]
  const torch::Tensor labels = Labels(B, T, V);
  for (const bool weight_grad : {false, true}) {
    // 1 row per chunk, 5 rows, and everything in one chunk.
    for (const int64_t chunk_elements : {V, 5 * V, int64_t{1} << 24}) {
      SCOPED_TRACE("weight_grad " + std::to_string(weight_grad) + ", chunk elements " +
                   std::to_string(chunk_elements));
      const Grads plain =
          LossAndGradients(false, hidden, weight, labels, weight_grad, chunk_elements);
      const Grads fast =
          LossAndGradients(true, hidden, weight, labels, weight_grad, chunk_elements);
      ExpectClose("loss", plain.loss, fast.loss, 2e-5 * plain.loss.item<double>());
      ExpectClose("d loss / d hidden", plain.hidden, fast.hidden, 1e-6);
      if (weight_grad) ExpectClose("d loss / d lm_head", plain.weight, fast.weight, 1e-5);
    }
  }
}

// bf16 hidden states and lm_head (the CUDA fast path, run here on the CPU): the loss is the fp32
// loss of those same bf16 values, and the hidden states' gradient comes back in bf16, within
// bf16 rounding of the fp32 one.
TEST(CausalLmLossTest, Bf16HiddenStatesGiveTheFp32LossOfTheirValues) {
  torch::manual_seed(4);
  const int64_t B = 2, T = 13, D = 16, V = 37;
  const torch::Tensor hidden = torch::randn({B, T, D}).to(torch::kBFloat16);       // [B,T,D]
  const torch::Tensor weight = (torch::randn({V, D}) * 0.3).to(torch::kBFloat16);  // [V,D]
  const torch::Tensor labels = Labels(B, T, V);
  const Grads plain = LossAndGradients(false, hidden.to(torch::kFloat32),
                                       weight.to(torch::kFloat32), labels, false, 4 * V);
  const Grads fast = LossAndGradients(true, hidden, weight, labels, false, 4 * V);
  EXPECT_EQ(fast.loss.scalar_type(), torch::kFloat32);
  EXPECT_EQ(fast.hidden.scalar_type(), torch::kBFloat16);
  // The logits are bf16 products (8 mantissa bits), summed over the targets in fp32.
  ExpectClose("loss", plain.loss, fast.loss, 1e-2 * plain.loss.item<double>());
  ExpectClose("d loss / d hidden", plain.hidden, fast.hidden,
              2e-2 * plain.hidden.abs().max().item<double>());
}

TEST(CausalLmLossTest, NoTargetsIsZeroWithZeroGradient) {
  torch::Tensor hidden = torch::randn({2, 5, 8}, torch::requires_grad());  // [B,T,D]
  const torch::Tensor weight = torch::randn({11, 8});                      // [V,D]
  const torch::Tensor labels = torch::full({2, 5}, kIgnoreLabel, torch::kInt64);
  torch::Tensor loss = CausalLmLossSum(hidden, weight, labels);
  loss.backward();
  EXPECT_EQ(loss.item<double>(), 0.0);
  EXPECT_EQ(hidden.grad().abs().sum().item<double>(), 0.0);
}

}  // namespace
}  // namespace tuneledger::train
