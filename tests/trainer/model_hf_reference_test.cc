// tuneledger's model against Hugging Face transformers itself (reference/hf_reference.py, the
// pinned PyPI release in the project's Python environment): transformers makes and saves a
// random model, tuneledger loads the folder, and both compute logits for the same token ids.
//
// Shape legend: B batch, T tokens, V vocab.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <iostream>
#include <string>

#include "tests/testing/temp_dir.h"
#include "tests/trainer/model_test_support.h"
#include "worker/trainer/model/model_loader.h"
#include "worker/trainer/model/safetensors_reader.h"
#include "worker/trainer/model/safetensors_writer.h"

namespace tuneledger::train {
namespace {

using model_test::MaxAbsDiff;
using model_test::RunHfReference;
using model_test::TensorsClose;

// fp32 against fp32: only summation order differs.
constexpr double kFp32Tolerance = 1e-4;

struct HfVariant {
  const char* name;
  const char* arch;  // hf_reference.py make-model --arch
  bool tied;         // tie_word_embeddings
  // make-model --rope-parameters (empty: the architecture's default RoPE) and
  // --max-position-embeddings; the test runs 24 tokens, so 16 exercises dynamic scaling.
  const char* rope_parameters = "";
  int max_position_embeddings = 256;
};

void PrintTo(const HfVariant& variant, std::ostream* out) { *out << variant.name; }

class HfLogitsTest : public ::testing::TestWithParam<HfVariant> {};

torch::Tensor OurLogits(const std::string& model_dir, torch::Dtype base_dtype,
                        const torch::Tensor& ids) {
  ModelOptions options;
  options.base_dtype = base_dtype;
  LlamaForCausalLM model = LoadPretrained(model_dir, nullptr, options, torch::kCPU);
  model->eval();
  torch::NoGradGuard no_grad;
  return model(ids).to(torch::kFloat32);  // [B,T,V]
}

TEST_P(HfLogitsTest, MatchTransformersInFp32AndBf16) {
  const HfVariant& variant = GetParam();
  const ::tuneledger::testing::TempDir temp_dir;
  const std::string& dir = temp_dir.path();
  const std::string model_dir = dir + "/model";
  std::string make = std::string("make-model --arch ") + variant.arch + " --tie " +
                     (variant.tied ? "1" : "0") + " --seed 5 --out " + model_dir +
                     " --max-position-embeddings " +
                     std::to_string(variant.max_position_embeddings);
  if (*variant.rope_parameters != '\0') {
    make += std::string(" --rope-parameters '") + variant.rope_parameters + "'";
  }
  model_test::CommandResult made = RunHfReference(make);
  ASSERT_EQ(made.exit_code, 0) << made.output;

  const torch::Tensor ids = model_test::RandomIds(2, 24, 300, 7);  // [B,T]
  WriteSafetensors(dir + "/in.safetensors", {{"input_ids", ids}});
  model_test::CommandResult run =
      RunHfReference("logits --model-dir " + model_dir + " --input " + dir +
                     "/in.safetensors --out " + dir + "/out.safetensors --dtypes float32,bfloat16");
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const SafetensorsFile hf = SafetensorsFile::Open(dir + "/out.safetensors");
  const torch::Tensor hf_fp32 = hf.Tensor("float32");   // [B,T,V]
  const torch::Tensor hf_bf16 = hf.Tensor("bfloat16");  // [B,T,V]
  ASSERT_GT(hf_fp32.std().item<double>(), 0.5) << "logits too flat to tell models apart";

  const torch::Tensor ours_fp32 = OurLogits(model_dir, torch::kFloat32, ids);
  EXPECT_TRUE(TensorsClose(hf_fp32, ours_fp32, kFp32Tolerance)) << variant.name << " fp32";

  // bf16 base weights: tuneledger must be no further from the fp32 truth than transformers' own
  // bf16 model is (with some slack for rounding luck).
  const torch::Tensor ours_bf16 = OurLogits(model_dir, torch::kBFloat16, ids);
  const double ours_error = MaxAbsDiff(hf_fp32, ours_bf16);
  const double hf_error = MaxAbsDiff(hf_fp32, hf_bf16);
  std::cout << variant.name << ": fp32 max |diff| " << MaxAbsDiff(hf_fp32, ours_fp32)
            << "; bf16 vs fp32 truth: tuneledger " << ours_error << ", transformers " << hf_error
            << "\n";
  EXPECT_LE(ours_error, 1.5 * hf_error + 1e-3) << variant.name << " bf16";
}

INSTANTIATE_TEST_SUITE_P(
    Models, HfLogitsTest,
    ::testing::Values(HfVariant{"LlamaGqaTied", "llama", true},
                      HfVariant{"LlamaGqaUntied", "llama", false},
                      HfVariant{"Qwen2QkvBias", "qwen2", false},
                      HfVariant{"MistralWithinTheWindow", "mistral", false},
                      // Llama 3.1/3.2 scaling: with head dim 16 and theta 5e5 the wavelengths
                      // are 6.3, 32.5, 168, ...; an original context of 64 puts them in all three
                      // bands (kept < 16 <= smoothed <= 64 < divided by factor).
                      HfVariant{"Llama3RopeScaling", "llama", true,
                                R"({"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                      "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 64})"},
                      HfVariant{"LinearRopeScaling", "llama", false,
                                R"({"rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0})"},
                      HfVariant{"DynamicNtkPastMaxPositions", "llama", false,
                                R"({"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 2.0})",
                                16},
                      HfVariant{"YarnRopeScaling", "llama", false,
                                R"({"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                      "original_max_position_embeddings": 16})"}),
    [](const ::testing::TestParamInfo<HfVariant>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace tuneledger::train
