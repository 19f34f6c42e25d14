// bf16 and fp16 activations end to end (ModelOptions::activation_dtype), run on the CPU: every
// module keeps the low-precision dtype (nothing upcasts the residual stream), LoRA parameters
// and their gradients stay fp32, and the loss and the LoRA gradients track the fp32 model on the
// same weights within low-precision rounding, with and without gradient checkpointing and with
// an NF4-quantized base.
//
// Shape legend: B batch, T tokens, D hidden, V vocab.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "tests/testing/temp_dir.h"
#include "tests/trainer/model_test_support.h"
#include "worker/trainer/model/llama_model.h"
#include "worker/trainer/model/lora_linear.h"
#include "worker/trainer/model/model_loader.h"

namespace tuneledger::train {
namespace {

using model_test::TensorsClose;
using ::tuneledger::testing::TempDir;

const std::vector<std::string> kAllTargets = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                              "gate_proj", "up_proj", "down_proj"};

ModelOptions LowPrecision(torch::Dtype dtype) {
  ModelOptions options;
  options.base_dtype = dtype;
  options.activation_dtype = dtype;
  return options;
}

// Mean next-token cross-entropy on fp32 logits and the LoRA gradients of it.
struct Step {
  double loss = 0;
  std::vector<std::string> names;
  std::vector<torch::Tensor> grads;
};

Step TrainingStep(LlamaForCausalLM& model, const torch::Tensor& ids) {
  model->train();
  torch::Tensor logits = model(ids);  // [B,T,V] fp32
  EXPECT_EQ(logits.scalar_type(), torch::kFloat32);
  torch::Tensor loss =
      torch::nn::functional::cross_entropy(logits.slice(1, 0, -1).reshape({-1, logits.size(-1)}),
                                           ids.slice(1, 1).reshape({-1}));  // scalar
  Step step;
  step.loss = loss.item<double>();
  std::vector<torch::Tensor> params;
  for (const auto& [name, param] : model->NamedLoraParameters()) {
    step.names.push_back(name);
    params.push_back(param);
  }
  step.grads = torch::autograd::grad({loss}, params);
  return step;
}

double RelativeDifference(const torch::Tensor& expected, const torch::Tensor& actual) {
  torch::Tensor e = expected.to(torch::kFloat64), a = actual.to(torch::kFloat64);
  return ((e - a).norm() / e.norm()).item<double>();
}

class ActivationDtypeTest : public ::testing::TestWithParam<torch::Dtype> {};

INSTANTIATE_TEST_SUITE_P(LowPrecision, ActivationDtypeTest,
                         ::testing::Values(torch::kBFloat16, torch::kFloat16));

// A module that computed in fp32 would promote the residual stream (bf16 + fp32 -> fp32) or
// return fp32 itself: every output is checked.
TEST_P(ActivationDtypeTest, EveryModuleKeepsTheActivationDtype) {
  const torch::Dtype dtype = GetParam();
  const LlamaConfig config = model_test::TinyConfig();
  const LoraOptions lora{/*r=*/4, /*alpha=*/8.0, /*dropout=*/0.1, kAllTargets};
  torch::manual_seed(30);
  LlamaForCausalLM model = CreateRandom(config, LowPrecision(dtype), 31, &lora);
  model_test::RandomizeLoraB(model, 32);
  model->train();
  torch::Tensor ids = model_test::RandomIds(2, 9, config.vocab_size, 33);  // [B,T]

  torch::Tensor hidden = model->Hidden(ids);  // [B,T,D]
  EXPECT_EQ(hidden.scalar_type(), dtype);
  torch::Tensor x = torch::randn({2, 9, config.hidden_size}).to(dtype);  // [B,T,D]
  torch::Tensor cos = torch::ones({9, config.head_dim}, dtype);          // [T,Dh]
  torch::Tensor sin = torch::zeros({9, config.head_dim}, dtype);         // [T,Dh]
  for (LlamaDecoderLayer& layer : model->model->decoder_layers()) {
    EXPECT_EQ(layer->input_layernorm(x).scalar_type(), dtype);
    EXPECT_EQ(layer->self_attn(x, cos, sin).scalar_type(), dtype);
    EXPECT_EQ(layer->mlp(x).scalar_type(), dtype);
    EXPECT_EQ(layer(x, cos, sin).scalar_type(), dtype);
    EXPECT_EQ(layer->self_attn->q_proj(x).scalar_type(), dtype);
  }
  const Step step = TrainingStep(model, ids);
  ASSERT_EQ(step.grads.size(), 2 * kAllTargets.size() * config.num_hidden_layers);
  for (size_t i = 0; i < step.grads.size(); ++i) {
    EXPECT_EQ(step.grads[i].scalar_type(), torch::kFloat32) << step.names[i];
    EXPECT_GT(step.grads[i].abs().sum().item<double>(), 0) << step.names[i];
  }
  for (const auto& [name, param] : model->NamedLoraParameters()) {
    EXPECT_EQ(param.scalar_type(), torch::kFloat32) << name;
  }
}

// The two models hold the same (low-precision-representable) base weights and the same
// adapter; only the activations differ.
struct ModelPair {
  LlamaForCausalLM reference{nullptr};  // fp32 activations
  LlamaForCausalLM fast{nullptr};       // low-precision base weights and activations
};

ModelPair LoadPair(torch::Dtype dtype, const ModelOptions& common, const TempDir& temp_dir) {
  const LlamaConfig config = model_test::TinyConfig();
  const LoraOptions lora{/*r=*/4, /*alpha=*/8.0, /*dropout=*/0.0, kAllTargets};
  LlamaForCausalLM source = CreateRandom(config, ModelOptions{}, 40);
  model_test::RandomizeBaseWeights(source, 41);
  SaveFullModel(source, temp_dir.path(), dtype);
  ModelOptions reference_options = common;
  reference_options.base_dtype = torch::kFloat32;
  ModelOptions fast_options = common;
  fast_options.base_dtype = dtype;
  fast_options.activation_dtype = dtype;
  ModelPair pair;
  torch::manual_seed(42);
  pair.reference = LoadPretrained(temp_dir.path(), &lora, reference_options, torch::kCPU);
  torch::manual_seed(42);
  pair.fast = LoadPretrained(temp_dir.path(), &lora, fast_options, torch::kCPU);
  model_test::RandomizeLoraB(pair.reference, 43);
  model_test::RandomizeLoraB(pair.fast, 43);
  return pair;
}

void ExpectStepsAgree(const Step& reference, const Step& fast, double loss_tolerance,
                      double gradient_tolerance) {
  // The bound for every fast path is 0.5% of the fp32 loss.
  EXPECT_NEAR(fast.loss, reference.loss, loss_tolerance * reference.loss);
  ASSERT_EQ(reference.grads.size(), fast.grads.size());
  for (size_t i = 0; i < reference.grads.size(); ++i) {
    EXPECT_LT(RelativeDifference(reference.grads[i], fast.grads[i]), gradient_tolerance)
        << reference.names[i];
  }
}

TEST_P(ActivationDtypeTest, LossAndLoraGradientsTrackTheFp32Model) {
  const torch::Dtype dtype = GetParam();
  const TempDir temp_dir;
  ModelPair pair = LoadPair(dtype, ModelOptions{}, temp_dir);
  torch::Tensor ids = model_test::RandomIds(4, 16, model_test::TinyConfig().vocab_size, 44);
  const Step reference = TrainingStep(pair.reference, ids);
  const Step fast = TrainingStep(pair.fast, ids);
  // bf16 keeps 8 mantissa bits, fp16 11.
  ExpectStepsAgree(reference, fast, 5e-3, dtype == torch::kBFloat16 ? 5e-2 : 1e-2);
  // The tolerance is tight enough to fail: the fp32 model on other ids is far outside it.
  const Step shifted = TrainingStep(pair.reference, (ids + 1).remainder(40));
  EXPECT_GT(RelativeDifference(reference.grads[0], shifted.grads[0]), 0.1);
}

TEST_P(ActivationDtypeTest, CheckpointedLayersGiveTheSameGradients) {
  const torch::Dtype dtype = GetParam();
  const LlamaConfig config = model_test::TinyConfig();
  const LoraOptions lora{/*r=*/4, /*alpha=*/8.0, /*dropout=*/0.2, kAllTargets};
  torch::manual_seed(50);
  LlamaForCausalLM model = CreateRandom(config, LowPrecision(dtype), 51, &lora);
  model_test::RandomizeLoraB(model, 52);
  torch::Tensor ids = model_test::RandomIds(2, 10, config.vocab_size, 53);  // [B,T]
  torch::manual_seed(54);
  const Step plain = TrainingStep(model, ids);
  model->SetGradientCheckpointing(true);
  torch::manual_seed(54);
  const Step checkpointed = TrainingStep(model, ids);
  EXPECT_EQ(plain.loss, checkpointed.loss);
  ASSERT_EQ(plain.grads.size(), checkpointed.grads.size());
  for (size_t i = 0; i < plain.grads.size(); ++i) {
    EXPECT_TRUE(TensorsClose(plain.grads[i], checkpointed.grads[i], 1e-6)) << plain.names[i];
  }
}

TEST_P(ActivationDtypeTest, Nf4BaseTracksTheFp32ActivationsOnTheSameQuantizedWeights) {
  const torch::Dtype dtype = GetParam();
  ModelOptions nf4;
  nf4.quantize_base = quant::BaseQuantization::kNf4;
  const TempDir temp_dir;
  ModelPair pair = LoadPair(dtype, nf4, temp_dir);
  ASSERT_TRUE(pair.fast->DecoderProjections().front().second->quantized());
  torch::Tensor ids = model_test::RandomIds(4, 16, model_test::TinyConfig().vocab_size, 55);
  const Step reference = TrainingStep(pair.reference, ids);
  const Step fast = TrainingStep(pair.fast, ids);
  ExpectStepsAgree(reference, fast, 5e-3, dtype == torch::kBFloat16 ? 5e-2 : 1e-2);
}

TEST(ActivationDtypeOptionsTest, AnIntegerActivationDtypeIsRefusedByName) {
  ModelOptions options;
  options.activation_dtype = torch::kInt32;
  EXPECT_THAT(model_test::TrainErrorMessage(
                  [&] { LlamaForCausalLM model(model_test::TinyConfig(), nullptr, options); }),
              ::testing::HasSubstr("activation_dtype"));
}

}  // namespace
}  // namespace tuneledger::train
