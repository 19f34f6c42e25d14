#include "worker/trainer/recipe/train_state.h"

#include <ATen/Context.h>
#include <torch/torch.h>

#include <type_traits>
#include <utility>

#include "lm/trainer_error.h"

namespace tuneledger::train {
namespace {

// LibTorch 2.x optimizers key their per-parameter state by the parameter's TensorImpl.
using StateKeyType = std::decay_t<decltype(std::declval<torch::optim::AdamW&>().state())>::key_type;
StateKeyType StateKey(const torch::Tensor& parameter) { return parameter.unsafeGetTensorImpl(); }

at::Generator DefaultGenerator(torch::Device device) {
  return at::globalContext().defaultGenerator(device);
}

torch::Tensor GetGeneratorState(torch::Device device) {
  at::Generator generator = DefaultGenerator(device);
  std::lock_guard<std::mutex> lock(generator.mutex());
  return generator.get_state();
}

void SetGeneratorState(torch::Device device, const torch::Tensor& state) {
  at::Generator generator = DefaultGenerator(device);
  std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_state(state);
}

}  // namespace

TrainSnapshot CaptureSnapshot(const TrainState& state, const std::vector<std::string>& names,
                              const std::vector<torch::Tensor>& parameters,
                              torch::optim::AdamW& optimizer, torch::Device device,
                              const std::string& fingerprint) {
  torch::NoGradGuard no_grad;
  TrainSnapshot snapshot;
  snapshot.state = state;
  snapshot.fingerprint = fingerprint;
  for (size_t i = 0; i < parameters.size(); ++i) {
    const torch::Tensor& parameter = parameters[i];
    snapshot.parameters.emplace_back(names[i], parameter.detach().to(torch::kCPU).clone());
    AdamMoments moments;
    const auto it = optimizer.state().find(StateKey(parameter));
    if (it != optimizer.state().end()) {
      const auto& adam = static_cast<const torch::optim::AdamWParamState&>(*it->second);
      moments.step = adam.step();
      moments.exp_avg = adam.exp_avg().to(torch::kCPU).clone();
      moments.exp_avg_sq = adam.exp_avg_sq().to(torch::kCPU).clone();
    }
    snapshot.moments.push_back(std::move(moments));
  }
  snapshot.cpu_rng_state = GetGeneratorState(torch::kCPU);
  if (device.is_cuda()) snapshot.cuda_rng_state = GetGeneratorState(device);
  return snapshot;
}

TrainState RestoreSnapshot(const TrainSnapshot& snapshot, const std::vector<std::string>& names,
                           const std::vector<torch::Tensor>& parameters,
                           torch::optim::AdamW& optimizer, torch::Device device) {
  if (snapshot.parameters.size() != parameters.size() ||
      snapshot.moments.size() != parameters.size()) {
    throw TrainError("checkpoint holds " + std::to_string(snapshot.parameters.size()) +
                     " trainable tensors, the model has " + std::to_string(parameters.size()));
  }
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < parameters.size(); ++i) {
    const auto& [name, value] = snapshot.parameters[i];
    if (name != names[i]) {
      throw TrainError("checkpoint tensor " + std::to_string(i) + " is " + name +
                       ", the model expects " + names[i]);
    }
    if (value.sizes() != parameters[i].sizes()) {
      throw TrainError("checkpoint tensor " + name + " has shape " + c10::str(value.sizes()) +
                       ", the model expects " + c10::str(parameters[i].sizes()));
    }
    torch::Tensor parameter = parameters[i];
    parameter.copy_(value);
    const AdamMoments& moments = snapshot.moments[i];
    const StateKeyType key = StateKey(parameter);
    if (moments.step == 0) {
      optimizer.state().erase(key);
      continue;
    }
    if (moments.exp_avg.sizes() != parameter.sizes() ||
        moments.exp_avg_sq.sizes() != parameter.sizes()) {
      throw TrainError("checkpoint optimizer moments of " + name + " do not match its shape");
    }
    auto adam = std::make_unique<torch::optim::AdamWParamState>();
    adam->step(moments.step);
    adam->exp_avg(moments.exp_avg.to(parameter.device(), parameter.scalar_type()).clone());
    adam->exp_avg_sq(moments.exp_avg_sq.to(parameter.device(), parameter.scalar_type()).clone());
    optimizer.state()[key] = std::move(adam);
  }
  SetGeneratorState(torch::kCPU, snapshot.cpu_rng_state);
  if (device.is_cuda() && snapshot.cuda_rng_state.defined()) {
    SetGeneratorState(device, snapshot.cuda_rng_state);
  }
  return snapshot.state;
}

}  // namespace tuneledger::train
