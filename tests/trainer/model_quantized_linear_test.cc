// Quantized base weights (QLoRA, quantized_linear.h): the torch dequantization against
// block_quant's CPU reference (bit for bit), the CUDA kernel against it (value for value, on a
// GPU only), the packed bytes, logits within the NF4 / INT8 round-trip error of the fp32 model,
// gradients equal to an fp32 model holding the dequantized weights, training on the CPU, and a
// resumed run byte-identical to an unbroken one.
//
// Shape legend: B batch, T tokens, V vocab, in / out a projection's features.
#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/trainer/model_test_support.h"
#include "worker/trainer/model/llama_model.h"
#include "worker/trainer/model/lora_linear.h"
#include "worker/trainer/model/model_loader.h"
#include "worker/trainer/model/quantized_linear.h"
#include "worker/trainer/quant/block_quant.h"

namespace tuneledger::train {
namespace {

using model_test::TensorsClose;
using quant::BaseQuantization;

const std::vector<std::string> kAllTargets = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                              "gate_proj", "up_proj", "down_proj"};

// [out,in] normal(0, 0.2) with one all-zero row, so that zero blocks / rows are covered.
torch::Tensor RandomWeight(int64_t out, int64_t in, uint64_t seed) {
  torch::manual_seed(seed);
  torch::Tensor weight = torch::randn({out, in}) * 0.2;  // [out,in]
  weight[1].zero_();
  return weight;
}

std::vector<float> Values(const torch::Tensor& tensor) {
  const torch::Tensor flat = tensor.to(torch::kFloat32).contiguous();
  return std::vector<float>(flat.data_ptr<float>(), flat.data_ptr<float>() + flat.numel());
}

// block_quant's reference dequantization of `weight` [out,in], as a tensor.
torch::Tensor ReferenceRoundTrip(const torch::Tensor& weight, BaseQuantization scheme) {
  const std::vector<float> values = Values(weight);
  std::vector<float> dequantized;
  if (scheme == BaseQuantization::kNf4 || scheme == BaseQuantization::kNf4DoubleQuant) {
    dequantized = quant::DequantizeNf4(quant::QuantizeNf4(
        values, quant::kNf4DefaultBlockSize, scheme == BaseQuantization::kNf4DoubleQuant));
  } else {
    dequantized =
        quant::DequantizeInt8Rows(quant::QuantizeInt8Rows(values, weight.size(0), weight.size(1)));
  }
  return torch::tensor(dequantized).view(weight.sizes());  // [out,in]
}

// Exactly equal, bit for bit; the message prints the first differing value.
::testing::AssertionResult BitEqual(const torch::Tensor& expected, const torch::Tensor& actual) {
  if (expected.sizes() != actual.sizes() || expected.scalar_type() != actual.scalar_type()) {
    return ::testing::AssertionFailure() << "shape or dtype differs";
  }
  const torch::Tensor e = expected.to(torch::kCPU).contiguous();
  const torch::Tensor a = actual.to(torch::kCPU).contiguous();
  if (std::memcmp(e.data_ptr(), a.data_ptr(), e.numel() * e.element_size()) == 0) {
    return ::testing::AssertionSuccess();
  }
  const torch::Tensor diff = (e.to(torch::kFloat64) - a.to(torch::kFloat64)).abs().flatten();
  const int64_t at = diff.argmax().item<int64_t>();
  return ::testing::AssertionFailure()
         << "not bit-identical: max |diff| " << diff[at].item<double>() << " at flat index " << at
         << " (expected " << e.flatten()[at].item<double>() << ", actual "
         << a.flatten()[at].item<double>() << ")";
}

ModelOptions Quantized(BaseQuantization scheme) {
  ModelOptions options;
  options.quantize_base = scheme;
  return options;
}

class QuantSchemeTest : public ::testing::TestWithParam<BaseQuantization> {};

INSTANTIATE_TEST_SUITE_P(Schemes, QuantSchemeTest,
                         ::testing::Values(BaseQuantization::kNf4, BaseQuantization::kInt8,
                                           BaseQuantization::kNf4DoubleQuant),
                         [](const ::testing::TestParamInfo<BaseQuantization>& info) {
                           std::string name = quant::BaseQuantizationName(info.param);
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

// [7,33]: an odd element count (the last NF4 byte holds one value) and a short last block.
TEST_P(QuantSchemeTest, TorchDequantizationEqualsTheBlockQuantReferenceBitForBit) {
  for (const auto& [out, in] : std::vector<std::pair<int64_t, int64_t>>{{7, 33}, {48, 32}}) {
    SCOPED_TRACE(std::to_string(out) + "x" + std::to_string(in));
    const torch::Tensor weight = RandomWeight(out, in, 11);  // [out,in]
    const QuantizedWeight packed = QuantizeWeight(weight, GetParam());
    const torch::Tensor expected = ReferenceRoundTrip(weight, GetParam());  // [out,in]
    EXPECT_TRUE(BitEqual(expected, DequantizeWeightReference(packed, torch::kFloat32)));
    // The dispatching entry point on CPU tensors is the reference.
    EXPECT_TRUE(BitEqual(expected, DequantizeWeight(packed, torch::kFloat32)));
    // Low-precision outputs are the fp32 values rounded once.
    EXPECT_TRUE(BitEqual(expected.to(torch::kBFloat16),
                         DequantizeWeightReference(packed, torch::kBFloat16)));
    EXPECT_FALSE(BitEqual(weight, expected)) << "the round trip must lose something";
  }
}

// NF4 stores 4 bits a value plus one fp32 absmax per 64 values: 1/8 + 1/64 of fp32's bytes.
// NF4-DQ stores each absmax in one byte, plus one fp32 scale per 256 blocks and one fp32 offset:
// about 1/8 + 1/256. INT8 stores 8 bits plus one fp32 scale per row: 1/4 + 1/in.
TEST_P(QuantSchemeTest, PackedWeightsTakeTheirShareOfFp32Bytes) {
  const LlamaConfig config = model_test::TinyConfig();
  LoraOptions lora{/*r=*/4, /*alpha=*/8.0, /*dropout=*/0.0, kAllTargets};
  LlamaForCausalLM model = CreateRandom(config, Quantized(GetParam()), /*seed=*/3, &lora);
  int64_t packed_bytes = 0;
  int64_t fp32_bytes = 0;
  int64_t projections = 0;
  for (auto& [name, linear] : model->DecoderProjections()) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(linear->quantized());
    EXPECT_EQ(linear->weight.numel(), 0) << "the full weight must be freed";
    const QuantizedWeight& packed = linear->quantized_weight();
    const int64_t numel = packed.rows * packed.cols;
    fp32_bytes += numel * 4;
    packed_bytes += packed.bytes();
    const int64_t blocks = (numel + 63) / 64;
    const int64_t expected = GetParam() == BaseQuantization::kNf4 ? (numel + 1) / 2 + blocks * 4
                             : GetParam() == BaseQuantization::kNf4DoubleQuant
                                 ? (numel + 1) / 2 + blocks + (blocks + 255) / 256 * 4 + 4
                                 : numel + packed.rows * 4;
    EXPECT_EQ(packed.bytes(), expected);
    ++projections;
  }
  EXPECT_EQ(projections, 7 * config.num_hidden_layers);
  const double ratio = static_cast<double>(packed_bytes) / static_cast<double>(fp32_bytes);
  if (GetParam() == BaseQuantization::kNf4) {
    EXPECT_NEAR(ratio, 1.0 / 8 + 1.0 / 64, 1e-3) << packed_bytes << " of " << fp32_bytes;
  } else if (GetParam() == BaseQuantization::kNf4DoubleQuant) {
    // Plus 8 bytes a projection: at these sizes each has one second-level scale and its offset.
    const double fixed = 8.0 * static_cast<double>(projections) / static_cast<double>(fp32_bytes);
    EXPECT_NEAR(ratio, 1.0 / 8 + 1.0 / 256 + fixed, 1e-3) << packed_bytes << " of " << fp32_bytes;
  } else {
    // Every projection's in is D or F: the scale share lies between 1/F and 1/D.
    EXPECT_GE(ratio, 0.25 + 1.0 / static_cast<double>(config.intermediate_size) - 1e-9);
    EXPECT_LE(ratio, 0.25 + 1.0 / static_cast<double>(config.hidden_size) + 1e-9);
  }
  // Embeddings, norms and the lm_head stay as they were.
  EXPECT_EQ(model->model->embed_tokens->weight.numel(), config.vocab_size * config.hidden_size);
  EXPECT_EQ(model->lm_head->weight.numel(), config.vocab_size * config.hidden_size);
  // The model's size (tuneledger-train's total_params) counts a packed projection's values.
  LlamaForCausalLM unquantized = CreateRandom(config, ModelOptions{}, /*seed=*/3, &lora);
  EXPECT_EQ(model->ParameterCount(), unquantized->ParameterCount());
  int64_t listed = 0;
  for (const torch::Tensor& parameter : unquantized->parameters()) listed += parameter.numel();
  EXPECT_EQ(unquantized->ParameterCount(), listed);
}

// Bound: each quantized projection perturbs its output by about its relative round-trip error
// eps = ||W - W~|| / ||W|| (worst over the projections, W~ from block_quant's reference, not
// from the code under test). The perturbations of the P
// projections are independent rounding noise, so they add in quadrature along the residual
// stream: the logits move by about eps sqrt(P) relative; twice that is the bound. A wrong
// dequantization (nibbles swapped, a wrong block's absmax) moves them by O(1).
TEST_P(QuantSchemeTest, LogitsStayWithinTheRoundTripErrorOfTheFp32Model) {
  const LlamaConfig config = model_test::TinyConfig();
  LlamaForCausalLM full = CreateRandom(config, ModelOptions{}, /*seed=*/5);
  LlamaForCausalLM quantized = CreateRandom(config, Quantized(GetParam()), /*seed=*/5);
  double eps = 0;
  const auto full_weights = full->NamedBaseWeights(/*merge_lora=*/false);
  const auto projections = quantized->DecoderProjections();
  for (const auto& [name, linear] : projections) {
    ASSERT_TRUE(linear->quantized()) << name;
    torch::Tensor exact;
    for (const auto& [weight_name, weight] : full_weights) {
      if (weight_name == name + ".weight") exact = weight;
    }
    ASSERT_TRUE(exact.defined()) << name;
    const torch::Tensor rounded = ReferenceRoundTrip(exact, GetParam());  // [out,in]
    eps = std::max(eps, ((rounded - exact).norm() / exact.norm()).item<double>());
  }
  const double bound = 2.0 * eps * std::sqrt(static_cast<double>(projections.size()));
  full->eval();
  quantized->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor ids = model_test::RandomIds(2, 12, config.vocab_size, 6);  // [B,T]
  const torch::Tensor expected = full(ids);                                      // [B,T,V]
  const torch::Tensor actual = quantized(ids);                                   // [B,T,V]
  const double relative = ((actual - expected).norm() / expected.norm()).item<double>();
  EXPECT_LE(relative, bound) << "round-trip eps " << eps << " over " << projections.size()
                             << " projections";
  EXPECT_GT(relative, 0.0) << "the quantized model must differ from the fp32 one";
  std::cout << quant::BaseQuantizationName(GetParam()) << ": eps " << eps << ", logits relative "
            << relative << ", bound " << bound << "\n";
}

// The custom backward (W~ made again) against autograd through an fp32 model that holds the
// dequantized weights: same logits, same LoRA gradients; and the merged weights are the
// dequantized W plus the delta.
TEST_P(QuantSchemeTest, MatchesAnFp32ModelHoldingTheDequantizedWeights) {
  const LlamaConfig config = model_test::TinyConfig();
  LoraOptions lora{/*r=*/4, /*alpha=*/8.0, /*dropout=*/0.0, kAllTargets};
  torch::manual_seed(9);
  LlamaForCausalLM quantized = CreateRandom(config, Quantized(GetParam()), /*seed=*/8, &lora);
  model_test::RandomizeLoraB(quantized, 10);
  torch::manual_seed(9);
  LlamaForCausalLM plain = CreateRandom(config, ModelOptions{}, /*seed=*/8, &lora);
  {
    torch::NoGradGuard no_grad;
    auto plain_weights = plain->named_parameters();
    for (const auto& [name, value] : quantized->NamedBaseWeights(/*merge_lora=*/false)) {
      plain_weights[name].copy_(value);
    }
    for (const auto& [name, value] : quantized->NamedLoraParameters()) {
      plain_weights[name].copy_(value);
    }
  }
  const torch::Tensor ids = model_test::RandomIds(2, 10, config.vocab_size, 12);  // [B,T]
  const torch::Tensor quantized_logits = quantized(ids);                          // [B,T,V]
  const torch::Tensor plain_logits = plain(ids);                                  // [B,T,V]
  EXPECT_TRUE(TensorsClose(plain_logits, quantized_logits, 1e-5));
  quantized_logits.square().mean().backward();
  plain_logits.square().mean().backward();
  auto plain_lora = plain->NamedLoraParameters();
  auto quantized_lora = quantized->NamedLoraParameters();
  ASSERT_EQ(plain_lora.size(), quantized_lora.size());
  for (size_t i = 0; i < plain_lora.size(); ++i) {
    SCOPED_TRACE(plain_lora[i].first);
    EXPECT_EQ(plain_lora[i].first, quantized_lora[i].first) << "the adapter's names are PEFT's";
    EXPECT_TRUE(TensorsClose(plain_lora[i].second.grad(), quantized_lora[i].second.grad(), 1e-6));
  }
  const auto merged_plain = plain->NamedBaseWeights(/*merge_lora=*/true);
  const auto merged_quantized = quantized->NamedBaseWeights(/*merge_lora=*/true);
  ASSERT_EQ(merged_plain.size(), merged_quantized.size());
  for (size_t i = 0; i < merged_plain.size(); ++i) {
    SCOPED_TRACE(merged_plain[i].first);
    EXPECT_TRUE(TensorsClose(merged_plain[i].second, merged_quantized[i].second, 1e-6));
  }
}

torch::Tensor Loss(LlamaForCausalLM& model, const torch::Tensor& ids) {
  const torch::Tensor logits = model(ids);  // [B,T,V]
  const int64_t vocab = logits.size(2);
  return torch::nn::functional::cross_entropy(
      logits.narrow(1, 0, ids.size(1) - 1).reshape({-1, vocab}),
      ids.narrow(1, 1, ids.size(1) - 1).reshape({-1}));
}

void TrainSteps(LlamaForCausalLM& model, torch::optim::AdamW& optimizer, const torch::Tensor& ids,
                int steps, std::vector<double>* losses = nullptr) {
  for (int step = 0; step < steps; ++step) {
    optimizer.zero_grad();
    torch::Tensor loss = Loss(model, ids);
    loss.backward();
    optimizer.step();
    if (losses != nullptr) losses->push_back(loss.item<double>());
  }
}

std::vector<torch::Tensor> LoraTensors(LlamaForCausalLM& model) {
  std::vector<torch::Tensor> tensors;
  for (auto& [name, value] : model->NamedLoraParameters()) tensors.push_back(value);
  return tensors;
}

TEST(QuantizedTrainingTest, Nf4LoraTrainsOnCpuAndTheBaseStaysFrozen) {
  const LlamaConfig config = model_test::TinyConfig();
  LoraOptions lora{/*r=*/8, /*alpha=*/16.0, /*dropout=*/0.0, kAllTargets};
  torch::manual_seed(21);
  LlamaForCausalLM model =
      CreateRandom(config, Quantized(BaseQuantization::kNf4), /*seed=*/20, &lora);
  model->train();
  std::vector<torch::Tensor> packed_before;
  for (auto& [name, linear] : model->DecoderProjections()) {
    packed_before.push_back(linear->quantized_weight().data.clone());
  }
  const std::vector<torch::Tensor> trainable = model->TrainableParameters();
  EXPECT_EQ(trainable.size(), LoraTensors(model).size()) << "only LoRA trains";
  torch::optim::AdamW optimizer(trainable, torch::optim::AdamWOptions(1e-2));
  const torch::Tensor ids = model_test::RandomIds(4, 16, config.vocab_size, 22);  // [B,T]
  std::vector<double> losses;
  TrainSteps(model, optimizer, ids, 40, &losses);
  EXPECT_LT(losses.back(), 0.7 * losses.front())
      << "first loss " << losses.front() << ", last " << losses.back();
  size_t i = 0;
  for (auto& [name, linear] : model->DecoderProjections()) {
    EXPECT_TRUE(BitEqual(packed_before[i++], linear->quantized_weight().data)) << name;
  }
}

// A run stopped after 3 steps and resumed from its LoRA weights and AdamW state on a freshly
// loaded (so freshly quantized) base ends byte-identical to an unbroken 6-step run.
TEST(QuantizedTrainingTest, ResumedRunOnAFreshlyQuantizedBaseIsByteIdentical) {
  const LlamaConfig config = model_test::TinyConfig();
  LoraOptions lora{/*r=*/4, /*alpha=*/8.0, /*dropout=*/0.0, kAllTargets};
  const torch::Tensor ids = model_test::RandomIds(2, 12, config.vocab_size, 31);  // [B,T]
  auto fresh = [&] {
    torch::manual_seed(32);
    return CreateRandom(config, Quantized(BaseQuantization::kNf4), /*seed=*/30, &lora);
  };
  const auto options = torch::optim::AdamWOptions(1e-2).weight_decay(0.01);

  LlamaForCausalLM unbroken = fresh();
  torch::optim::AdamW unbroken_optimizer(unbroken->TrainableParameters(), options);
  TrainSteps(unbroken, unbroken_optimizer, ids, 6);

  LlamaForCausalLM first = fresh();
  torch::optim::AdamW first_optimizer(first->TrainableParameters(), options);
  TrainSteps(first, first_optimizer, ids, 3);
  std::stringstream saved;
  {
    torch::serialize::OutputArchive archive;
    first_optimizer.save(archive);
    archive.save_to(saved);
  }
  LlamaForCausalLM resumed = fresh();
  for (auto& [name, linear] : resumed->DecoderProjections()) {
    LoraLinearImpl* original = nullptr;
    for (auto& [first_name, first_linear] : first->DecoderProjections()) {
      if (first_name == name) original = first_linear;
    }
    ASSERT_NE(original, nullptr);
    EXPECT_TRUE(BitEqual(original->quantized_weight().data, linear->quantized_weight().data))
        << name << ": quantizing the same weights again must give the same bytes";
    EXPECT_TRUE(BitEqual(original->quantized_weight().scales, linear->quantized_weight().scales));
  }
  {
    torch::NoGradGuard no_grad;
    const std::vector<torch::Tensor> from = LoraTensors(first);
    std::vector<torch::Tensor> to = LoraTensors(resumed);
    for (size_t i = 0; i < from.size(); ++i) to[i].copy_(from[i]);
  }
  torch::optim::AdamW resumed_optimizer(resumed->TrainableParameters(), options);
  {
    torch::serialize::InputArchive archive;
    archive.load_from(saved);
    resumed_optimizer.load(archive);
  }
  TrainSteps(resumed, resumed_optimizer, ids, 3);
  const std::vector<torch::Tensor> expected = LoraTensors(unbroken);
  const std::vector<torch::Tensor> actual = LoraTensors(resumed);
  ASSERT_EQ(expected.size(), actual.size());
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_TRUE(BitEqual(expected[i], actual[i])) << i;
}

TEST(QuantizedTrainingTest, QuantizingATrainableBaseIsRefused) {
  ModelOptions options = Quantized(BaseQuantization::kNf4);
  options.train_base = true;
  EXPECT_NE(model_test::TrainErrorMessage([&] {
              CreateRandom(model_test::TinyConfig(), options, /*seed=*/1);
            }).find("not with train_base"),
            std::string::npos);
}

// The CUDA kernel against block_quant's reference, value for value (runs on a GPU only).
TEST_P(QuantSchemeTest, CudaKernelEqualsTheReferenceValueForValue) {
#if !TUNELEDGER_WITH_CUDA
  GTEST_SKIP() << "built without CUDA";
#else
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const torch::Device cuda(torch::kCUDA, 0);
  // Sizes past one thread block, an odd count, a short last NF4 block.
  for (const auto& [out, in] :
       std::vector<std::pair<int64_t, int64_t>>{{7, 33}, {333, 517}, {1024, 1024}}) {
    SCOPED_TRACE(std::to_string(out) + "x" + std::to_string(in));
    const torch::Tensor weight = RandomWeight(out, in, 41);  // [out,in]
    const QuantizedWeight packed = QuantizeWeight(weight, GetParam()).to(cuda);
    const torch::Tensor expected = ReferenceRoundTrip(weight, GetParam());  // [out,in] fp32
    for (const torch::Dtype dtype : {torch::kFloat32, torch::kBFloat16, torch::kFloat16}) {
      SCOPED_TRACE(c10::toString(dtype));
      const torch::Tensor actual = DequantizeWeightCuda(packed, dtype);
      ASSERT_TRUE(actual.is_cuda());
      EXPECT_TRUE(BitEqual(expected.to(dtype), actual.cpu()));
    }
  }
  // The same bf16-based quantized model on the GPU (W~ in bf16, bf16 GEMMs) and on the CPU (W~
  // in fp32, the reference path).
  const LlamaConfig config = model_test::TinyConfig();
  ModelOptions options = Quantized(GetParam());
  options.base_dtype = torch::kBFloat16;
  LlamaForCausalLM cpu = CreateRandom(config, options, /*seed=*/42);
  LlamaForCausalLM gpu = CreateRandom(config, options, /*seed=*/42);
  gpu->to(cuda);
  cpu->eval();
  gpu->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor ids = model_test::RandomIds(2, 12, config.vocab_size, 43);  // [B,T]
  const torch::Tensor expected = cpu(ids);                                        // [B,T,V]
  const torch::Tensor actual = gpu(ids.to(cuda)).cpu();                           // [B,T,V]
  const double relative = ((actual - expected).norm() / expected.norm()).item<double>();
  EXPECT_LT(relative, 0.02) << "bf16 GEMMs on the GPU vs fp32 on the CPU";
#endif
}

}  // namespace
}  // namespace tuneledger::train
