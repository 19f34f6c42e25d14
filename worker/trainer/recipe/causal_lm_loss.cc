// Shape legend: B batch, T tokens, D hidden, V vocab, N positions with a target, n rows of a
// chunk.
#include "worker/trainer/recipe/causal_lm_loss.h"

#include <torch/nn/functional/loss.h>
#include <torch/torch.h>

#include <algorithm>
#include <vector>

#include "lm/data/jsonl_dataset.h"
#include "worker/trainer/model/lora_linear.h"

namespace tuneledger::train {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The rows' logits in fp32, by the one dtype policy of frozen projections (BaseLinear).
torch::Tensor ChunkLogits(const torch::Tensor& rows, const torch::Tensor& weight) {
  return BaseLinear(rows, weight, torch::Tensor()).to(torch::kFloat32);  // [n,V]
}

// Cross-entropy sum over the given rows, chunk by chunk; backward recomputes each chunk's
// logits instead of keeping them.
struct ChunkedCrossEntropy : public torch::autograd::Function<ChunkedCrossEntropy> {
  // rows [N,D] (activation dtype), weight [V,D], targets [N] int64 -> scalar fp32.
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& rows,
                               const torch::Tensor& weight, const torch::Tensor& targets,
                               int64_t chunk_rows) {
    torch::Tensor total = torch::zeros({}, rows.options().dtype(torch::kFloat32));
    std::vector<torch::Tensor> lse_chunks;
    for (int64_t begin = 0; begin < rows.size(0); begin += chunk_rows) {
      const int64_t n = std::min(chunk_rows, rows.size(0) - begin);
      torch::Tensor logits = ChunkLogits(rows.narrow(0, begin, n), weight);  // [n,V]
      torch::Tensor lse = torch::logsumexp(logits, -1);                      // [n]
      torch::Tensor picked =
          logits.gather(1, targets.narrow(0, begin, n).unsqueeze(1)).squeeze(1);  // [n]
      total += (lse - picked).sum();
      lse_chunks.push_back(lse);
    }
    torch::Tensor lse =
        lse_chunks.empty() ? torch::zeros({0}, total.options()) : torch::cat(lse_chunks);  // [N]
    ctx->save_for_backward({rows, weight, targets, lse});
    ctx->saved_data["chunk_rows"] = chunk_rows;
    return total;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list saved = ctx->get_saved_variables();
    const torch::Tensor& rows = saved[0];     // [N,D]
    const torch::Tensor& weight = saved[1];   // [V,D]
    const torch::Tensor& targets = saved[2];  // [N]
    const torch::Tensor& lse = saved[3];      // [N]
    const int64_t chunk_rows = ctx->saved_data["chunk_rows"].toInt();
    const torch::Tensor grad_total = grad_outputs[0];  // scalar
    const bool weight_grad = weight.requires_grad();
    torch::Tensor grad_rows = torch::empty_like(rows);  // [N,D]
    torch::Tensor grad_weight =
        weight_grad ? torch::zeros(weight.sizes(), weight.options().dtype(torch::kFloat32))
                    : torch::Tensor();  // [V,D]
    for (int64_t begin = 0; begin < rows.size(0); begin += chunk_rows) {
      const int64_t n = std::min(chunk_rows, rows.size(0) - begin);
      const torch::Tensor chunk = rows.narrow(0, begin, n);  // [n,D]
      // d loss / d logits = softmax - one_hot(target), times the incoming gradient.
      torch::Tensor g =
          (ChunkLogits(chunk, weight) - lse.narrow(0, begin, n).unsqueeze(1)).exp_();  // [n,V]
      g.scatter_add_(1, targets.narrow(0, begin, n).unsqueeze(1),
                     torch::full({n, 1}, -1.0, g.options()));
      g.mul_(grad_total);
      // In the rows' dtype: bf16/fp16 activations take the low-precision GEMM directly.
      grad_rows.narrow(0, begin, n).copy_(BaseMatmul(g.to(rows.scalar_type()), weight));
      if (weight_grad) grad_weight.add_(torch::matmul(g.t(), chunk.to(g.scalar_type())));  // [V,D]
    }
    return {grad_rows, weight_grad ? grad_weight.to(weight.scalar_type()) : torch::Tensor(),
            torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor CausalLmLossSum(const torch::Tensor& hidden, const torch::Tensor& lm_head_weight,
                              const torch::Tensor& labels, int64_t chunk_elements) {
  const int64_t dim = hidden.size(-1);
  const int64_t vocab = lm_head_weight.size(0);
  torch::Tensor positions = hidden.slice(/*dim=*/1, 0, -1).reshape({-1, dim});  // [B*(T-1),D]
  torch::Tensor next = labels.slice(/*dim=*/1, 1).reshape({-1});                // [B*(T-1)]
  torch::Tensor with_target = (next != kIgnoreLabel).nonzero().squeeze(1);      // [N]
  torch::Tensor rows = positions.index_select(0, with_target);                  // [N,D]
  torch::Tensor targets = next.index_select(0, with_target);                    // [N]
  const int64_t chunk_rows = std::max<int64_t>(1, chunk_elements / vocab);
  return ChunkedCrossEntropy::apply(rows, lm_head_weight, targets, chunk_rows);
}

torch::Tensor CausalLmLossSumFromLogits(const torch::Tensor& logits, const torch::Tensor& labels) {
  namespace F = torch::nn::functional;
  const int64_t vocab = logits.size(-1);
  torch::Tensor predictions = logits.slice(/*dim=*/1, 0, -1).reshape({-1, vocab});  // [B*(T-1),V]
  torch::Tensor targets = labels.slice(/*dim=*/1, 1).reshape({-1});                 // [B*(T-1)]
  return F::cross_entropy(
      predictions.to(torch::kFloat32), targets,
      F::CrossEntropyFuncOptions().ignore_index(kIgnoreLabel).reduction(torch::kSum));
}

}  // namespace tuneledger::train
