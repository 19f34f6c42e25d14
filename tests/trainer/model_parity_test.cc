// Parity with an independent implementation of the Hugging Face Llama equations
// (reference/llama_reference.py, float64 NumPy, its own safetensors reader): RMSNorm, RoPE,
// GQA attention, and whole forward passes of random small models in several variants.
//
// Shape legend: B batch, T tokens, D hidden, H heads, Hkv kv heads, Dh head dim, V vocab.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <iostream>
#include <string>
#include <vector>

#include "tests/testing/temp_dir.h"
#include "tests/trainer/model_test_support.h"
#include "worker/trainer/model/llama_attention.h"
#include "worker/trainer/model/llama_model.h"
#include "worker/trainer/model/lora_linear.h"
#include "worker/trainer/model/model_loader.h"
#include "worker/trainer/model/peft_adapter.h"
#include "worker/trainer/model/rms_norm.h"
#include "worker/trainer/model/rotary_embedding.h"
#include "worker/trainer/model/safetensors_reader.h"
#include "worker/trainer/model/safetensors_writer.h"

namespace tuneledger::train {
namespace {

using model_test::RunReference;
using model_test::TensorsClose;
using ::tuneledger::testing::TempDir;

constexpr double kComponentTolerance = 1e-5;

// Checks and prints the max difference (also recorded in the XML report).
void ExpectClose(const std::string& what, const torch::Tensor& expected,
                 const torch::Tensor& actual, double tolerance) {
  if (!expected.defined()) return;  // the reference failed; already reported
  EXPECT_TRUE(TensorsClose(expected, actual, tolerance)) << what;
  const double diff = model_test::MaxAbsDiff(expected, actual);
  std::cout << what << ": max |diff| vs reference = " << diff << " (tolerance " << tolerance
            << ")\n";
  ::testing::Test::RecordProperty(what, std::to_string(diff));
}
constexpr double kLogitsTolerance = 1e-4;

// Writes `inputs`, runs the reference `command`, returns its tensor `output_name`.
torch::Tensor Reference(const std::string& command, const std::string& extra_args,
                        const std::vector<std::pair<std::string, torch::Tensor>>& inputs,
                        const std::string& output_name) {
  const TempDir temp_dir;
  const std::string& dir = temp_dir.path();
  WriteSafetensors(dir + "/in.safetensors", inputs);
  const model_test::CommandResult result =
      RunReference(command + " --input " + dir + "/in.safetensors --out " + dir +
                   "/out.safetensors " + extra_args);
  EXPECT_EQ(result.exit_code, 0) << result.output;
  if (result.exit_code != 0) return torch::Tensor();
  return SafetensorsFile::Open(dir + "/out.safetensors").Tensor(output_name);
}

TEST(ParityTest, RmsNormMatchesReference) {
  torch::manual_seed(11);
  RmsNorm norm(32, 1e-5);
  torch::NoGradGuard no_grad;
  norm->weight.copy_(torch::randn({32}) * 0.5 + 1.0);  // [D]
  torch::Tensor x = torch::randn({2, 5, 32}) * 3.0;    // [B,T,D]
  torch::Tensor expected =
      Reference("rmsnorm", "--eps 1e-5", {{"x", x}, {"weight", norm->weight}}, "y");
  ExpectClose("rmsnorm", expected, norm(x), kComponentTolerance);
}

TEST(ParityTest, RopeMatchesReferenceForSeveralThetas) {
  for (double theta : {10000.0, 500000.0, 1000000.0}) {
    SCOPED_TRACE(theta);
    torch::manual_seed(12);
    torch::Tensor x = torch::randn({2, 3, 37, 16});  // [B,H,T,Dh]
    RotaryEmbedding rotary(16, theta);
    auto [cos, sin] = rotary.CosSin(37, torch::kCPU);  // [T,Dh] each
    torch::Tensor expected = Reference("rope", "--theta " + std::to_string(theta), {{"x", x}}, "y");
    ExpectClose("rope", expected, ApplyRotary(x, cos, sin), kComponentTolerance);
  }
}

TEST(ParityTest, GqaAttentionMatchesReferenceOnBothKernels) {
  torch::manual_seed(13);
  torch::Tensor q = torch::randn({2, 6, 9, 8});  // [B,H,T,Dh]
  torch::Tensor k = torch::randn({2, 2, 9, 8});  // [B,Hkv,T,Dh]
  torch::Tensor v = torch::randn({2, 2, 9, 8});  // [B,Hkv,T,Dh]
  torch::Tensor expected = Reference("attention", "", {{"q", q}, {"k", k}, {"v", v}}, "y");
  ExpectClose("plain_attention", expected, PlainAttention(q, k, v), kComponentTolerance);
  // The fused kernel (scaled_dot_product_attention) against the same reference.
  ExpectClose("fused_attention", expected, FusedAttention(q, k, v), kComponentTolerance);
}

// The fused kernel's gradients of q, k and v (the kv heads' summed over their query heads,
// inside the kernel when it takes GQA itself) against autograd through the written-out
// equations, for grouped (Hkv = 2) and multi-query (Hkv = 1) attention.
TEST(ParityTest, GqaAttentionGradientsMatchThePlainKernel) {
  for (const int64_t kv_heads : {2, 1}) {
    SCOPED_TRACE(kv_heads);
    torch::manual_seed(14);
    const torch::Tensor q0 = torch::randn({2, 6, 9, 8});         // [B,H,T,Dh]
    const torch::Tensor k0 = torch::randn({2, kv_heads, 9, 8});  // [B,Hkv,T,Dh]
    const torch::Tensor v0 = torch::randn({2, kv_heads, 9, 8});  // [B,Hkv,T,Dh]
    const torch::Tensor out_grad = torch::randn({2, 6, 9, 8});   // [B,H,T,Dh]
    auto gradients = [&](auto attention) {
      torch::Tensor q = q0.clone().requires_grad_(true);
      torch::Tensor k = k0.clone().requires_grad_(true);
      torch::Tensor v = v0.clone().requires_grad_(true);
      return torch::autograd::grad({attention(q, k, v)}, {q, k, v}, {out_grad});
    };
    const std::vector<torch::Tensor> plain = gradients(PlainAttention);
    const std::vector<torch::Tensor> fused = gradients(FusedAttention);
    ExpectClose("dq", plain[0], fused[0], kComponentTolerance);
    ExpectClose("dk", plain[1], fused[1], kComponentTolerance);
    ExpectClose("dv", plain[2], fused[2], kComponentTolerance);
  }
}

struct Variant {
  const char* name;
  void (*edit)(LlamaConfig&);
};

const Variant kVariants[] = {
    {"gqa_untied", [](LlamaConfig&) {}},
    {"tied_mqa_theta_500k",
     [](LlamaConfig& c) {
       c.tie_word_embeddings = true;
       c.num_key_value_heads = 1;
       c.rope_theta = 500000.0;
     }},
    {"qwen2_qkv_bias",
     [](LlamaConfig& c) {
       c.model_type = "qwen2";
       c.attention_bias = true;
       c.rope_theta = 1000000.0;
       c.num_key_value_heads = 4;
     }},
    {"llama_attention_and_mlp_bias_explicit_head_dim",
     [](LlamaConfig& c) {
       c.attention_bias = true;
       c.attention_output_bias = true;
       c.mlp_bias = true;
       c.head_dim = 12;  // != D / H
     }},
};

class ForwardParityTest : public ::testing::TestWithParam<Variant> {};

TEST_P(ForwardParityTest, LogitsMatchReference) {
  LlamaConfig config = model_test::TinyConfig();
  GetParam().edit(config);
  LlamaForCausalLM model = CreateRandom(config, ModelOptions{}, /*seed=*/21);
  model_test::RandomizeBaseWeights(model, /*seed=*/22);
  model->eval();
  const TempDir temp_dir;
  const std::string& dir = temp_dir.path();
  SaveFullModel(model, dir + "/model", torch::kFloat32);
  torch::Tensor ids = model_test::RandomIds(2, 11, config.vocab_size, /*seed=*/23);  // [B,T]
  WriteSafetensors(dir + "/ids.safetensors", {{"input_ids", ids}});
  const model_test::CommandResult result =
      RunReference("forward --model-dir " + dir + "/model --input " + dir +
                   "/ids.safetensors --out " + dir + "/logits.safetensors");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  torch::Tensor expected = SafetensorsFile::Open(dir + "/logits.safetensors").Tensor("logits");

  torch::NoGradGuard no_grad;
  torch::Tensor actual = model(ids);  // [B,T,V]
  EXPECT_GT(expected.std().item<double>(), 0.1) << "logits too flat to make a parity test";
  ExpectClose(std::string(GetParam().name) + "_logits", expected, actual, kLogitsTolerance);
  // The same through the loader (config.json + model.safetensors written by SaveFullModel).
  LlamaForCausalLM loaded = LoadPretrained(dir + "/model", nullptr, ModelOptions{}, torch::kCPU);
  loaded->eval();
  ExpectClose(std::string(GetParam().name) + "_loaded_logits", expected, loaded(ids),
              kLogitsTolerance);
}

INSTANTIATE_TEST_SUITE_P(Variants, ForwardParityTest, ::testing::ValuesIn(kVariants),
                         [](const ::testing::TestParamInfo<Variant>& info) {
                           return std::string(info.param.name);
                         });

// The adapter written in PEFT format, read back by the reference with its own parser and
// applied as W + (alpha / r) B A, gives the logits of our unmerged LoRA model.
TEST(ParityTest, PeftAdapterAppliedByReferenceMatchesLoraLogits) {
  LlamaConfig config = model_test::TinyConfig();
  LoraOptions lora{/*r=*/4,
                   /*alpha=*/8.0,
                   /*dropout=*/0.1,
                   {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}};
  torch::manual_seed(31);
  LlamaForCausalLM model = CreateRandom(config, ModelOptions{}, /*seed=*/32, &lora);
  model_test::RandomizeBaseWeights(model, /*seed=*/33);
  const TempDir temp_dir;
  const std::string& dir = temp_dir.path();
  SaveFullModel(model, dir + "/base", torch::kFloat32);  // B = 0: the base weights
  model_test::RandomizeLoraB(model, /*seed=*/34);
  WritePeftAdapter(model, lora, dir + "/base", dir + "/adapter");
  model->eval();
  torch::Tensor ids = model_test::RandomIds(2, 9, config.vocab_size, /*seed=*/35);  // [B,T]
  WriteSafetensors(dir + "/ids.safetensors", {{"input_ids", ids}});
  const model_test::CommandResult result =
      RunReference("forward --model-dir " + dir + "/base --adapter " + dir + "/adapter --input " +
                   dir + "/ids.safetensors --out " + dir + "/logits.safetensors");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  torch::Tensor expected = SafetensorsFile::Open(dir + "/logits.safetensors").Tensor("logits");
  torch::NoGradGuard no_grad;
  torch::Tensor actual = model(ids);  // [B,T,V]
  ExpectClose("lora_adapter_logits", expected, actual, kLogitsTolerance);
  // The adapter must matter, or this test could not fail.
  LlamaForCausalLM base = LoadPretrained(dir + "/base", nullptr, ModelOptions{}, torch::kCPU);
  base->eval();
  EXPECT_GT(model_test::MaxAbsDiff(base(ids), actual), 1e-2);
}

}  // namespace
}  // namespace tuneledger::train
