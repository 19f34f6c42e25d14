// Shape legend: B batch, T tokens, D hidden, Dh head dim.
#include "worker/trainer/model/checkpointed_layer.h"

#include <ATen/Context.h>
#include <torch/custom_class.h>
#include <torch/torch.h>

#include <mutex>
#include <utility>
#include <vector>

namespace tuneledger::train {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// What backward needs besides the saved input: the layer (kept alive here) and the state of
// the default generator of the input's device before the forward pass.
struct RecomputeState : torch::CustomClassHolder {
  LlamaDecoderLayer layer{nullptr};
  torch::Tensor cos;  // [T,Dh], a view of the model's shared cache
  torch::Tensor sin;  // [T,Dh]
  at::Generator generator;
  torch::Tensor rng_state;  // the generator's serialized state before forward
};

at::Generator DefaultGenerator(const torch::Device& device) {
  return at::globalContext().defaultGenerator(device);
}

torch::Tensor GetRngState(at::Generator& generator) {
  std::lock_guard<std::mutex> lock(generator.mutex());
  return generator.get_state();
}

void SetRngState(at::Generator& generator, const torch::Tensor& state) {
  std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_state(state);
}

class CheckpointFunction : public torch::autograd::Function<CheckpointFunction> {
 public:
  // Runs with grad disabled (autograd::Function does that): no activations are kept.
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor x, at::TensorList params,
                               c10::intrusive_ptr<RecomputeState> state) {
    state->rng_state = GetRngState(state->generator);
    torch::Tensor y = state->layer(x, state->cos, state->sin);  // [B,T,D]
    ctx->save_for_backward({x});
    ctx->saved_data["state"] = c10::IValue::make_capsule(std::move(state));
    ctx->saved_data["num_params"] = static_cast<int64_t>(params.size());
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    auto state =
        c10::static_intrusive_pointer_cast<RecomputeState>(ctx->saved_data["state"].toCapsule());
    const int64_t num_params = ctx->saved_data["num_params"].toInt();
    torch::Tensor x = ctx->get_saved_variables()[0];  // [B,T,D]

    // Replay the forward pass's random draws (dropout masks), then put the generator back
    // where the rest of the step left it.
    torch::Tensor rng_after = GetRngState(state->generator);
    SetRngState(state->generator, state->rng_state);
    torch::Tensor x_again = x.detach().requires_grad_(x.requires_grad());  // [B,T,D]
    torch::Tensor y_again;
    {
      torch::AutoGradMode enable_grad(true);
      y_again = state->layer(x_again, state->cos, state->sin);  // [B,T,D]
    }
    SetRngState(state->generator, rng_after);

    std::vector<torch::Tensor> params;
    for (const torch::Tensor& p : state->layer->parameters()) {
      if (p.requires_grad()) params.push_back(p);
    }
    TORCH_CHECK(static_cast<int64_t>(params.size()) == num_params,
                "checkpointed layer: trainable parameters changed between forward and backward");
    variable_list inputs;
    if (x.requires_grad()) inputs.push_back(x_again);
    inputs.insert(inputs.end(), params.begin(), params.end());
    variable_list grads = torch::autograd::grad({y_again}, inputs, {grad_outputs[0]},
                                                /*retain_graph=*/false,
                                                /*create_graph=*/false, /*allow_unused=*/true);
    // One gradient per forward input: x, each parameter, and (undefined) the state.
    variable_list result;
    result.push_back(x.requires_grad() ? grads[0] : torch::Tensor());
    const size_t first_param = x.requires_grad() ? 1 : 0;
    for (int64_t i = 0; i < num_params; ++i) result.push_back(grads[first_param + i]);
    result.emplace_back();
    return result;
  }
};

}  // namespace

torch::Tensor CheckpointedLayerForward(LlamaDecoderLayer& layer, const torch::Tensor& x,
                                       const torch::Tensor& cos, const torch::Tensor& sin) {
  std::vector<torch::Tensor> params;
  for (const torch::Tensor& p : layer->parameters()) {
    if (p.requires_grad()) params.push_back(p);
  }
  if (!torch::GradMode::is_enabled() || (params.empty() && !x.requires_grad())) {
    return layer(x, cos, sin);  // [B,T,D]: nothing to differentiate, nothing to save
  }
  auto state = c10::make_intrusive<RecomputeState>();
  state->layer = layer;
  state->cos = cos;
  state->sin = sin;
  state->generator = DefaultGenerator(x.device());
  return CheckpointFunction::apply(x, at::TensorList(params), std::move(state));  // [B,T,D]
}

}  // namespace tuneledger::train
