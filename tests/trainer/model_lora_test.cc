// LoRA on the Llama model: identity at B = 0, merge parity, frozen base, parameter names,
// option validation, low-precision base weights vs the fp32 reference, fused vs plain
// attention, and gradient checkpointing vs no checkpointing.
//
// Shape legend: B batch, T tokens, D hidden, V vocab, r LoRA rank, in / out features.
#include <ATen/CPUGeneratorImpl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <string>
#include <vector>

#include "tests/testing/temp_dir.h"
#include "tests/trainer/model_test_support.h"
#include "worker/trainer/model/llama_attention.h"
#include "worker/trainer/model/llama_model.h"
#include "worker/trainer/model/lora_linear.h"
#include "worker/trainer/model/model_loader.h"

namespace tuneledger::train {
namespace {

using model_test::TensorsClose;
using model_test::TrainErrorMessage;
using ::testing::HasSubstr;
using ::tuneledger::testing::TempDir;

const std::vector<std::string> kAllTargets = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                              "gate_proj", "up_proj", "down_proj"};

TEST(LoraTest, ZeroBGivesTheBaseModelsLogits) {
  const LlamaConfig config = model_test::TinyConfig();
  LoraOptions lora{/*r=*/4, /*alpha=*/16.0, /*dropout=*/0.2, kAllTargets};
  LlamaForCausalLM base = CreateRandom(config, ModelOptions{}, /*seed=*/1);
  torch::manual_seed(2);
  LlamaForCausalLM adapted = CreateRandom(config, ModelOptions{}, /*seed=*/1, &lora);
  torch::Tensor ids = model_test::RandomIds(2, 10, config.vocab_size, 3);  // [B,T]
  torch::NoGradGuard no_grad;
  base->eval();
  adapted->eval();
  torch::Tensor expected = base(ids);  // [B,T,V]
  EXPECT_TRUE(TensorsClose(expected, adapted(ids), 1e-5));
  // In training mode too: dropout only touches the LoRA input, which B = 0 multiplies away.
  adapted->train();
  EXPECT_TRUE(TensorsClose(expected, adapted(ids), 1e-5));
}

TEST(LoraTest, MergedWeightsGiveTheUnmergedLogits) {
  const LlamaConfig config = model_test::TinyConfig();
  LoraOptions lora{/*r=*/4, /*alpha=*/8.0, /*dropout=*/0.0, kAllTargets};
  torch::manual_seed(4);
  LlamaForCausalLM model = CreateRandom(config, ModelOptions{}, /*seed=*/5, &lora);
  model_test::RandomizeLoraB(model, 6);
  model->eval();
  torch::Tensor ids = model_test::RandomIds(2, 10, config.vocab_size, 7);  // [B,T]
  torch::NoGradGuard no_grad;
  torch::Tensor unmerged = model(ids);  // [B,T,V]

  // The merged model writer folds LoRA in without changing the model.
  const TempDir temp_dir;
  const std::string& dir = temp_dir.path();
  SaveFullModel(model, dir + "/merged", torch::kFloat32);
  EXPECT_TRUE(TensorsClose(unmerged, model(ids), 0.0));
  LlamaForCausalLM reloaded = LoadPretrained(dir + "/merged", nullptr, ModelOptions{}, torch::kCPU);
  reloaded->eval();
  EXPECT_TRUE(TensorsClose(unmerged, reloaded(ids), 1e-5));

  model->MergeLora();
  EXPECT_TRUE(TensorsClose(unmerged, model(ids), 1e-5));
  // And the adapter mattered (otherwise this test could not fail).
  LlamaForCausalLM base = CreateRandom(config, ModelOptions{}, /*seed=*/5);
  base->eval();
  EXPECT_GT(model_test::MaxAbsDiff(base(ids), unmerged), 1e-2);
}

TEST(LoraTest, InitScaleAndShapesFollowPeft) {
  LoraOptions lora{/*r=*/8, /*alpha=*/32.0, /*dropout=*/0.1, {"q_proj"}};
  torch::manual_seed(8);
  LoraLinear linear(/*in=*/64, /*out=*/48, /*bias=*/false, torch::kFloat32, &lora);
  EXPECT_EQ(linear->lora_A->weight.sizes(), (std::vector<int64_t>{8, 64}));  // [r,in]
  EXPECT_EQ(linear->lora_B->weight.sizes(), (std::vector<int64_t>{48, 8}));  // [out,r]
  EXPECT_EQ(linear->lora_B->weight.abs().max().item<float>(), 0.0f);
  // Kaiming-uniform with a = sqrt(5): U(-1/sqrt(in), 1/sqrt(in)).
  const double bound = 1.0 / std::sqrt(64.0);
  const double max_a = linear->lora_A->weight.abs().max().item<double>();
  EXPECT_LE(max_a, bound);
  EXPECT_GT(max_a, 0.9 * bound);
  EXPECT_DOUBLE_EQ(linear->scale(), 4.0);
  EXPECT_TRUE(linear->lora_A->weight.requires_grad());
  EXPECT_FALSE(linear->weight.requires_grad());
  EXPECT_EQ(linear->lora_A->weight.scalar_type(), torch::kFloat32);
}

TEST(LoraTest, BaseIsFrozenAndNamesAreHuggingFaces) {
  LlamaConfig config = model_test::TinyConfig();
  config.num_hidden_layers = 1;
  LoraOptions lora{/*r=*/2, /*alpha=*/4.0, /*dropout=*/0.0, {"q_proj", "v_proj", "down_proj"}};
  LlamaForCausalLM model = CreateRandom(config, ModelOptions{}, 9, &lora);
  std::vector<std::string> names;
  for (const auto& [name, param] : model->NamedLoraParameters()) names.push_back(name);
  EXPECT_EQ(names, (std::vector<std::string>{
                       "model.layers.0.self_attn.q_proj.lora_A.weight",
                       "model.layers.0.self_attn.q_proj.lora_B.weight",
                       "model.layers.0.self_attn.v_proj.lora_A.weight",
                       "model.layers.0.self_attn.v_proj.lora_B.weight",
                       "model.layers.0.mlp.down_proj.lora_A.weight",
                       "model.layers.0.mlp.down_proj.lora_B.weight",
                   }));
  std::vector<std::string> base_names;
  for (const auto& [name, weight] : model->NamedBaseWeights(false)) base_names.push_back(name);
  EXPECT_EQ(base_names, (std::vector<std::string>{
                            "model.embed_tokens.weight",
                            "model.layers.0.input_layernorm.weight",
                            "model.layers.0.self_attn.q_proj.weight",
                            "model.layers.0.self_attn.k_proj.weight",
                            "model.layers.0.self_attn.v_proj.weight",
                            "model.layers.0.self_attn.o_proj.weight",
                            "model.layers.0.post_attention_layernorm.weight",
                            "model.layers.0.mlp.gate_proj.weight",
                            "model.layers.0.mlp.up_proj.weight",
                            "model.layers.0.mlp.down_proj.weight",
                            "model.norm.weight",
                            "lm_head.weight",
                        }));
  for (const auto& named : model->named_parameters()) {
    const bool is_lora = named.key().find(".lora_") != std::string::npos;
    EXPECT_EQ(named.value().requires_grad(), is_lora) << named.key();
  }
  EXPECT_EQ(model->TrainableParameters().size(), 6u);

  ModelOptions full;
  full.train_base = true;
  LlamaForCausalLM base = CreateRandom(config, full, 9);
  EXPECT_EQ(base->TrainableParameters().size(), base_names.size());
}

TEST(LoraTest, InvalidOptionsNameTheField) {
  const LlamaConfig config = model_test::TinyConfig();
  auto build = [&](LoraOptions lora) { LlamaForCausalLM model(config, &lora, ModelOptions{}); };
  EXPECT_THAT(TrainErrorMessage([&] {
                build({0, 16.0, 0.1, {"q_proj"}});
              }),
              HasSubstr("lora r: must be in [1, 1024], got 0"));
  EXPECT_THAT(TrainErrorMessage([&] {
                build({8, -1.0, 0.1, {"q_proj"}});
              }),
              HasSubstr("lora alpha: must be > 0"));
  EXPECT_THAT(TrainErrorMessage([&] {
                build({8, 16.0, 1.0, {"q_proj"}});
              }),
              HasSubstr("lora dropout: must be in [0, 1)"));
  EXPECT_THAT(TrainErrorMessage([&] {
                build({8, 16.0, 0.1, {"q_proj", "lm_head"}});
              }),
              HasSubstr("lora target_modules: unknown module 'lm_head'"));
  ModelOptions options;
  options.base_dtype = torch::kInt8;
  EXPECT_THAT(TrainErrorMessage([&] { LlamaForCausalLM model(config, nullptr, options); }),
              HasSubstr("base_dtype"));
}

// The low-precision GEMM (the CUDA fast path) agrees with the fp32 reference within bf16/fp16
// rounding: bf16 on the CPU; on CUDA bf16 and fp16.
// With dropout on, the adapter's output and the gradients of x, A and B are those of the plain
// formula y = x W^T + (x * mask / (1 - p)) A^T B^T * scale on the mask the generator draws, in
// fp32 and bf16 (the down projection keeps a bool mask and recomputes the dropped input).
TEST(LoraTest, DropoutBranchIsThePlainFormulaOnTheDrawnMask) {
  for (const torch::Dtype dtype : {torch::kFloat32, torch::kBFloat16}) {
    SCOPED_TRACE(c10::toString(dtype));
    const LoraOptions lora{/*r=*/4, /*alpha=*/8.0, /*dropout=*/0.25, {"q_proj"}};
    torch::manual_seed(23);
    LoraLinear linear(/*in=*/24, /*out=*/20, /*bias=*/false, dtype, &lora);
    {
      torch::NoGradGuard no_grad;
      linear->weight.normal_(0, 0.2);
      linear->lora_B->weight.normal_(0, 0.2);
    }
    linear->train();
    const torch::Tensor x_value = torch::randn({3, 5, 24}).to(dtype);  // [B,T,in]
    const torch::Tensor grad = torch::randn({3, 5, 20}).to(dtype);     // [B,T,out]

    torch::Tensor x = x_value.clone().requires_grad_(true);
    torch::manual_seed(24);
    torch::Tensor y = linear(x);
    const std::vector<torch::Tensor> actual =
        torch::autograd::grad({y}, {x, linear->lora_A->weight, linear->lora_B->weight}, {grad});

    torch::manual_seed(24);  // the same draw
    const torch::Tensor keep = DrawDropoutKeep({3, 5, 24}, torch::TensorOptions(dtype), 0.75, 0);
    torch::Tensor x_ref = x_value.clone().requires_grad_(true);
    torch::Tensor a = linear->lora_A->weight.detach().clone().requires_grad_(true);
    torch::Tensor b = linear->lora_B->weight.detach().clone().requires_grad_(true);
    torch::Tensor dropped = x_ref * keep.to(torch::kBool) * (1.0 / 0.75);
    torch::Tensor expected_y =
        torch::linear(x_ref, linear->weight) +
        torch::linear(torch::linear(dropped, a.to(dtype)), b.to(dtype)) * linear->scale();
    const std::vector<torch::Tensor> expected =
        torch::autograd::grad({expected_y}, {x_ref, a, b}, {grad});

    // Relative to the largest value: bf16 keeps 8 mantissa bits, and the two round in other
    // places.
    const double relative = dtype == torch::kFloat32 ? 1e-6 : 1e-2;
    auto close = [&](const torch::Tensor& expected_value, const torch::Tensor& actual_value) {
      const double scale = expected_value.abs().max().to(torch::kFloat64).item<double>();
      return TensorsClose(expected_value, actual_value, relative * scale);
    };
    EXPECT_TRUE(close(expected_y, y));
    const char* names[] = {"x", "lora_A", "lora_B"};
    for (int i = 0; i < 3; ++i) {
      EXPECT_EQ(actual[i].scalar_type(), expected[i].scalar_type()) << names[i];
      EXPECT_TRUE(close(expected[i], actual[i])) << names[i];
    }
    // The mask matters: another draw gives another output.
    torch::manual_seed(25);
    EXPECT_FALSE(close(y, linear(x_value)));
  }
}

// Data parallel: a rank that draws rows [2, 4) of a batch gets those rows of the whole batch's
// draw, and leaves the default generator where the whole draw leaves it, so every later draw
// agrees too.
// On the CPU, and on CUDA when a GPU is present (Philox: the generator's seed and offset).
TEST(DrawDropoutKeepTest, AShardsRowsAreThoseOfTheWholeBatch) {
  for (const torch::Device device : {torch::Device(torch::kCPU), torch::Device(torch::kCUDA)}) {
    if (device.is_cuda() && !torch::cuda::is_available()) continue;
    SCOPED_TRACE(device.str());
    const torch::TensorOptions options = torch::TensorOptions(torch::kFloat32).device(device);
    torch::manual_seed(7);
    const torch::Tensor whole = DrawDropoutKeep({4, 6, 16}, options, 0.75, 0);  // [B,T,in]
    const torch::Tensor whole_next = DrawDropoutKeep({4, 6, 16}, options, 0.75, 0);
    torch::manual_seed(7);
    const torch::Tensor shard = DrawDropoutKeep({2, 6, 16}, options, 0.75, 2);
    const torch::Tensor shard_next = DrawDropoutKeep({2, 6, 16}, options, 0.75, 2);
    EXPECT_TRUE(torch::equal(shard, whole.narrow(0, 2, 2)));
    EXPECT_TRUE(torch::equal(shard_next, whole_next.narrow(0, 2, 2)));
    // Rows and calls get masks of their own.
    EXPECT_FALSE(torch::equal(whole[0], whole[1]));
    EXPECT_FALSE(torch::equal(whole, whole_next));
    // Another row offset is another row's mask.
    torch::manual_seed(7);
    EXPECT_FALSE(torch::equal(DrawDropoutKeep({2, 6, 16}, options, 0.75, 1), shard));
  }
}

// Each value is kept with probability `keep`, independently: over 64 rows x 4096 values the kept
// fraction of each row is within 5 standard deviations of `keep`, and so is the fraction of
// values kept in two rows at once (keep^2, as for independent rows).
TEST(DrawDropoutKeepTest, KeepsEachValueWithTheKeepProbability) {
  torch::manual_seed(11);
  const double keep = 0.9;
  const int64_t rows = 64, values = 4096;
  const torch::Tensor mask = DrawDropoutKeep({rows, values}, torch::TensorOptions(torch::kFloat32),
                                             keep, 5);  // [rows,values]
  const auto is_binary = (mask == 0).logical_or(mask == 1).all().item<bool>();
  EXPECT_TRUE(is_binary);
  const torch::Tensor kept = mask.mean(1);  // [rows]
  const double sd = std::sqrt(keep * (1 - keep) / values);
  EXPECT_LT((kept - keep).abs().max().item<double>(), 5 * sd);
  const double both = (mask[0] * mask[1]).mean().item<double>();
  EXPECT_NEAR(both, keep * keep, 5 * std::sqrt(keep * keep * (1 - keep * keep) / values));
}

// The CUDA path's down projection (bool mask, the dropped input made again in the backward)
// against autograd on the plain formula, on the CPU, in fp32 and bf16.
TEST(LoraTest, LoraDownWithDropoutIsThePlainFormula) {
  for (const torch::Dtype dtype : {torch::kFloat32, torch::kBFloat16}) {
    SCOPED_TRACE(c10::toString(dtype));
    torch::manual_seed(26);
    const torch::Tensor x_value = torch::randn({3, 5, 24}).to(dtype);  // [B,T,in]
    const torch::Tensor a_value = torch::randn({4, 24}) * 0.2;         // [r,in] fp32
    const torch::Tensor dropped = torch::rand({3, 5, 24}) < 0.3;       // [B,T,in] bool
    const torch::Tensor grad = torch::randn({3, 5, 4}).to(dtype);      // [B,T,r]
    const double inv_keep = 1.0 / 0.7;
    auto run = [&](bool fused) {
      torch::Tensor x = x_value.clone().requires_grad_(true);
      torch::Tensor a = a_value.clone().requires_grad_(true);
      torch::Tensor down =
          fused ? LoraDownWithDropout(x, a, dropped, inv_keep)
                : torch::linear(x * dropped.logical_not().to(dtype) * inv_keep, a.to(dtype));
      std::vector<torch::Tensor> grads = torch::autograd::grad({down}, {x, a}, {grad});
      grads.insert(grads.begin(), down.detach());
      return grads;
    };
    const std::vector<torch::Tensor> expected = run(false);
    const std::vector<torch::Tensor> actual = run(true);
    const char* names[] = {"down", "d x", "d A"};
    for (int i = 0; i < 3; ++i) {
      EXPECT_EQ(actual[i].scalar_type(), expected[i].scalar_type()) << names[i];
      const double scale = expected[i].abs().max().to(torch::kFloat64).item<double>();
      EXPECT_TRUE(
          TensorsClose(expected[i], actual[i], (dtype == torch::kFloat32 ? 1e-6 : 1e-2) * scale))
          << names[i];
    }
    // Dropped values get no gradient.
    EXPECT_EQ(actual[1].masked_select(dropped).abs().sum().item<double>(), 0.0);
  }
}

TEST(LowPrecisionTest, LowPrecisionLinearMatchesFp32Reference) {
  std::vector<std::pair<torch::Device, torch::Dtype>> cases = {{torch::kCPU, torch::kBFloat16}};
  if (torch::cuda::is_available()) {
    cases.push_back({torch::kCUDA, torch::kBFloat16});
    cases.push_back({torch::kCUDA, torch::kFloat16});
  }
  torch::manual_seed(10);
  for (const auto& [device, dtype] : cases) {
    SCOPED_TRACE(device.str() + " " + c10::toString(dtype));
    torch::Tensor x = torch::randn({3, 5, 64}).to(device);                    // [B,T,in]
    torch::Tensor weight = (torch::randn({48, 64}) * 0.1).to(device, dtype);  // [out,in]
    torch::Tensor bias = (torch::randn({48}) * 0.1).to(device, dtype);        // [out]
    torch::Tensor reference = ReferenceLinear(x, weight, bias);               // [B,T,out]
    torch::Tensor fast = LowPrecisionLinear(x, weight, bias);                 // [B,T,out]
    EXPECT_EQ(fast.scalar_type(), torch::kFloat32);
    // The input is rounded to the weight dtype: bf16 keeps 8 mantissa bits, fp16 11.
    EXPECT_TRUE(TensorsClose(reference, fast, dtype == torch::kBFloat16 ? 5e-2 : 5e-3));
    // And BaseLinear picks the fast path on CUDA, the reference on CPU.
    torch::Tensor chosen = BaseLinear(x, weight, bias);
    EXPECT_TRUE(TensorsClose(device.is_cuda() ? fast : reference, chosen, 0.0));
  }
}

// A model holding bf16 base weights computes (on CPU, by upcasting) exactly what an fp32
// model with the same bf16-representable weights computes; LoRA stays fp32.
TEST(LowPrecisionTest, Bf16BaseModelMatchesFp32Model) {
  const LlamaConfig config = model_test::TinyConfig();
  LoraOptions lora{/*r=*/4, /*alpha=*/8.0, /*dropout=*/0.0, kAllTargets};
  torch::manual_seed(11);
  LlamaForCausalLM model = CreateRandom(config, ModelOptions{}, 12, &lora);
  const TempDir temp_dir;
  const std::string& dir = temp_dir.path();
  SaveFullModel(model, dir + "/bf16", torch::kBFloat16);
  ModelOptions bf16;
  bf16.base_dtype = torch::kBFloat16;
  torch::manual_seed(13);
  LlamaForCausalLM low = LoadPretrained(dir + "/bf16", &lora, bf16, torch::kCPU);
  torch::manual_seed(13);
  LlamaForCausalLM full = LoadPretrained(dir + "/bf16", &lora, ModelOptions{}, torch::kCPU);
  EXPECT_EQ(
      low->model->layers[0]->as<LlamaDecoderLayerImpl>()->self_attn->q_proj->weight.scalar_type(),
      torch::kBFloat16);
  EXPECT_EQ(low->model->embed_tokens->weight.scalar_type(), torch::kBFloat16);
  for (const auto& [name, param] : low->NamedLoraParameters()) {
    EXPECT_EQ(param.scalar_type(), torch::kFloat32) << name;
  }
  model_test::RandomizeLoraB(low, 14);
  model_test::RandomizeLoraB(full, 14);
  low->eval();
  full->eval();
  torch::Tensor ids = model_test::RandomIds(2, 8, config.vocab_size, 15);  // [B,T]
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(TensorsClose(full(ids), low(ids), 1e-5));
}

TEST(AttentionKernelTest, FusedAgreesWithPlainInTheModel) {
  const LlamaConfig config = model_test::TinyConfig();
  LoraOptions lora{/*r=*/4, /*alpha=*/8.0, /*dropout=*/0.0, kAllTargets};
  LlamaForCausalLM model = CreateRandom(config, ModelOptions{}, 16, &lora);
  model_test::RandomizeLoraB(model, 22);
  model->eval();
  torch::Tensor ids = model_test::RandomIds(2, 12, config.vocab_size, 17);  // [B,T]
  // Logits and the LoRA gradients of a loss on them, through one kernel.
  auto run = [&](AttentionKernel kernel) {
    model->SetAttentionKernel(kernel);
    torch::Tensor logits = model(ids);  // [B,T,V]
    std::vector<torch::Tensor> params;
    for (const auto& [name, param] : model->NamedLoraParameters()) params.push_back(param);
    std::vector<torch::Tensor> grads = torch::autograd::grad({logits.logsumexp(-1).sum()}, params);
    return std::make_pair(logits.detach(), grads);
  };
  const auto [plain, plain_grads] = run(AttentionKernel::kPlain);
  const auto [fused, fused_grads] = run(AttentionKernel::kFused);
  EXPECT_TRUE(TensorsClose(plain, fused, 1e-5));
  ASSERT_EQ(plain_grads.size(), fused_grads.size());
  for (size_t i = 0; i < plain_grads.size(); ++i) {
    EXPECT_TRUE(TensorsClose(plain_grads[i], fused_grads[i], 1e-5)) << "gradient " << i;
  }
}

// LoRA gradients of one training step (dropout on), with the default generator seeded.
std::vector<torch::Tensor> LoraGradients(LlamaForCausalLM& model, const torch::Tensor& ids,
                                         uint64_t seed, bool use_autograd_grad) {
  torch::manual_seed(seed);
  model->train();
  torch::Tensor logits = model(ids);  // [B,T,V]
  torch::Tensor loss = torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}),
                                                            ids.roll(-1, 1).reshape({-1}));
  std::vector<torch::Tensor> params;
  for (const auto& [name, param] : model->NamedLoraParameters()) params.push_back(param);
  if (use_autograd_grad) return torch::autograd::grad({loss}, params);
  for (torch::Tensor& p : params) p.mutable_grad() = torch::Tensor();
  loss.backward();
  std::vector<torch::Tensor> grads;
  for (torch::Tensor& p : params) grads.push_back(p.grad().clone());
  return grads;
}

TEST(GradientCheckpointingTest, SameLoraGradientsWithDropoutOn) {
  const LlamaConfig config = model_test::TinyConfig();
  LoraOptions lora{/*r=*/4, /*alpha=*/8.0, /*dropout=*/0.3, kAllTargets};
  torch::manual_seed(18);
  LlamaForCausalLM model = CreateRandom(config, ModelOptions{}, 19, &lora);
  model_test::RandomizeLoraB(model, 20);
  torch::Tensor ids = model_test::RandomIds(2, 10, config.vocab_size, 21);  // [B,T]
  const std::vector<std::string> names = [&] {
    std::vector<std::string> n;
    for (const auto& [name, p] : model->NamedLoraParameters()) n.push_back(name);
    return n;
  }();

  model->SetGradientCheckpointing(false);
  std::vector<torch::Tensor> expected = LoraGradients(model, ids, 100, false);
  torch::Tensor rng_after_plain = at::detail::getDefaultCPUGenerator().get_state();
  for (bool use_autograd_grad : {false, true}) {
    SCOPED_TRACE(use_autograd_grad ? "autograd::grad" : "backward()");
    model->SetGradientCheckpointing(true);
    std::vector<torch::Tensor> actual = LoraGradients(model, ids, 100, use_autograd_grad);
    ASSERT_EQ(actual.size(), expected.size());
    for (size_t i = 0; i < expected.size(); ++i) {
      ASSERT_TRUE(actual[i].defined()) << names[i];
      EXPECT_TRUE(TensorsClose(expected[i], actual[i], 1e-6)) << names[i];
    }
    // Checkpointing leaves the generator where an un-checkpointed step leaves it.
    EXPECT_TRUE(torch::equal(rng_after_plain, at::detail::getDefaultCPUGenerator().get_state()));
  }
  // Dropout is really on: another seed gives other gradients (so the test above can fail).
  model->SetGradientCheckpointing(false);
  std::vector<torch::Tensor> other = LoraGradients(model, ids, 101, false);
  EXPECT_GT(model_test::MaxAbsDiff(expected[0], other[0]), 1e-4);
}

TEST(GradientCheckpointingTest, FullFineTuningGradientsMatchToo) {
  LlamaConfig config = model_test::TinyConfig();
  ModelOptions options;
  options.train_base = true;
  LlamaForCausalLM model = CreateRandom(config, options, 22);
  torch::Tensor ids = model_test::RandomIds(2, 10, config.vocab_size, 23);  // [B,T]
  auto gradients = [&](bool checkpoint) {
    model->SetGradientCheckpointing(checkpoint);
    model->train();
    torch::Tensor logits = model(ids);  // [B,T,V]
    torch::Tensor loss = logits.pow(2).mean();
    return torch::autograd::grad({loss}, model->TrainableParameters());
  };
  std::vector<torch::Tensor> expected = gradients(false);
  std::vector<torch::Tensor> actual = gradients(true);
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_TRUE(TensorsClose(expected[i], actual[i], 1e-6)) << "parameter " << i;
  }
}

}  // namespace
}  // namespace tuneledger::train
