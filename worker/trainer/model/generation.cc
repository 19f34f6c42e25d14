// Shape legend: T tokens, V vocab.
#include "worker/trainer/model/generation.h"

#include <torch/torch.h>

#include "lm/trainer_error.h"
#include "worker/trainer/model/lora_linear.h"

namespace tuneledger::train {

std::vector<int64_t> GreedyGenerate(LlamaForCausalLM& model, const std::vector<int64_t>& prompt,
                                    int max_new_tokens, int64_t eos_id) {
  if (prompt.empty()) throw TrainError("GreedyGenerate: empty prompt");
  const bool was_training = model->is_training();
  model->eval();
  torch::NoGradGuard no_grad;
  const torch::Device device = model->model->embed_tokens->weight.device();
  std::vector<int64_t> sequence = prompt;
  std::vector<int64_t> generated;
  for (int step = 0; step < max_new_tokens; ++step) {
    torch::Tensor ids = torch::tensor(sequence, torch::kInt64).unsqueeze(0).to(device);  // [1,T]
    // Logits of the last position only: [1,D] x [V,D]^T.
    torch::Tensor hidden = model->Hidden(ids).select(1, ids.size(1) - 1);             // [1,D]
    torch::Tensor last = BaseLinear(hidden, model->LmHeadWeight(), torch::Tensor());  // [1,V]
    const int64_t next = last.argmax(-1).item<int64_t>();
    if (next == eos_id) break;
    generated.push_back(next);
    sequence.push_back(next);
  }
  model->train(was_training);
  return generated;
}

}  // namespace tuneledger::train
