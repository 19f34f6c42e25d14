// The PEFT adapter output (key names, shapes, dtype, adapter_config.json), checked here and by
// the independent Python reader; reading it back; loading LoRA weights; greedy generation.
//
// Shape legend: B batch, T tokens, V vocab, r LoRA rank, in / out features.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/testing/temp_dir.h"
#include "tests/trainer/model_test_support.h"
#include "worker/trainer/model/generation.h"
#include "worker/trainer/model/llama_model.h"
#include "worker/trainer/model/model_loader.h"
#include "worker/trainer/model/peft_adapter.h"
#include "worker/trainer/model/safetensors_reader.h"
#include "worker/trainer/model/safetensors_writer.h"

namespace tuneledger::train {
namespace {

using model_test::TensorsClose;
using model_test::TrainErrorMessage;
using nlohmann::json;
using ::testing::HasSubstr;
using ::tuneledger::testing::TempDir;

class PeftTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = model_test::TinyConfig();
    lora_ = LoraOptions{
        /*r=*/4, /*alpha=*/16.0, /*dropout=*/0.05, {"q_proj", "v_proj", "gate_proj", "down_proj"}};
    torch::manual_seed(50);
    model_ = CreateRandom(config_, ModelOptions{}, 51, &lora_);
    dir_ = temp_dir_.path();
    SaveFullModel(model_, dir_ + "/base", torch::kFloat32);
    model_test::RandomizeLoraB(model_, 52);
    WritePeftAdapter(model_, lora_, "tiny-llama", dir_ + "/adapter");
  }

  LlamaConfig config_;
  LoraOptions lora_;
  LlamaForCausalLM model_{nullptr};
  TempDir temp_dir_;
  std::string dir_;  // temp_dir_.path()
};

TEST_F(PeftTest, KeysShapesAndDtypeArePefts) {
  SafetensorsFile file = SafetensorsFile::Open(dir_ + "/adapter/adapter_model.safetensors");
  std::vector<std::string> expected_names;
  for (int layer = 0; layer < 2; ++layer) {
    const std::string prefix = "base_model.model.model.layers." + std::to_string(layer) + ".";
    for (const char* module :
         {"mlp.down_proj", "mlp.gate_proj", "self_attn.q_proj", "self_attn.v_proj"}) {
      expected_names.push_back(prefix + module + ".lora_A.weight");
      expected_names.push_back(prefix + module + ".lora_B.weight");
    }
  }
  EXPECT_EQ(file.names(), expected_names);  // sorted
  const std::string q = "base_model.model.model.layers.0.self_attn.q_proj.";
  EXPECT_EQ(file.Entry(q + "lora_A.weight").shape, (std::vector<int64_t>{4, 32}));  // [r,in]
  EXPECT_EQ(file.Entry(q + "lora_B.weight").shape, (std::vector<int64_t>{32, 4}));  // [out,r]
  const std::string v = "base_model.model.model.layers.1.self_attn.v_proj.";
  EXPECT_EQ(file.Entry(v + "lora_B.weight").shape, (std::vector<int64_t>{16, 4}));  // Hkv*Dh
  const std::string down = "base_model.model.model.layers.1.mlp.down_proj.";
  EXPECT_EQ(file.Entry(down + "lora_A.weight").shape, (std::vector<int64_t>{4, 48}));  // [r,F]
  for (const std::string& name : file.names()) EXPECT_EQ(file.Entry(name).dtype, "F32") << name;
  EXPECT_TRUE(
      torch::equal(file.Tensor(q + "lora_B.weight"),
                   model_->named_parameters()["model.layers.0.self_attn.q_proj.lora_B.weight"]));
}

TEST_F(PeftTest, AdapterConfigHasPeftsFields) {
  json config = json::parse(model_test::ReadFileBytes(dir_ + "/adapter/adapter_config.json"));
  EXPECT_EQ(config["peft_type"], "LORA");
  EXPECT_EQ(config["task_type"], "CAUSAL_LM");
  EXPECT_EQ(config["r"], 4);
  EXPECT_TRUE(config["r"].is_number_integer());
  EXPECT_EQ(config["lora_alpha"], 16);
  EXPECT_DOUBLE_EQ(config["lora_dropout"].get<double>(), 0.05);
  EXPECT_EQ(config["target_modules"], json({"q_proj", "v_proj", "gate_proj", "down_proj"}));
  EXPECT_EQ(config["base_model_name_or_path"], "tiny-llama");
  EXPECT_EQ(config["bias"], "none");
  EXPECT_EQ(config["fan_in_fan_out"], false);
  EXPECT_EQ(config["inference_mode"], true);
}

TEST_F(PeftTest, IndependentPythonReaderAcceptsTheAdapter) {
  const std::string args = "check-adapter --adapter " + dir_ + "/adapter --model-dir " + dir_ +
                           "/base --expect-r 4 --expect-alpha 16";
  model_test::CommandResult result = model_test::RunReference(args);
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("\"tensors\": 16"));
  // The checker can fail: a wrong r in the config is caught.
  json config = json::parse(model_test::ReadFileBytes(dir_ + "/adapter/adapter_config.json"));
  config["r"] = 8;
  model_test::WriteFileBytes(dir_ + "/adapter/adapter_config.json", config.dump());
  result = model_test::RunReference(args);
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_THAT(result.output, HasSubstr("expected shape"));
}

TEST_F(PeftTest, ReadBackAndLoadGiveTheSameLogits) {
  PeftAdapter adapter = ReadPeftAdapter(dir_ + "/adapter");
  EXPECT_EQ(adapter.lora.r, 4);
  EXPECT_DOUBLE_EQ(adapter.lora.alpha, 16.0);
  EXPECT_EQ(adapter.lora.target_modules, lora_.target_modules);
  EXPECT_EQ(adapter.base_model_name_or_path, "tiny-llama");
  ASSERT_EQ(adapter.weights.size(), 16u);
  EXPECT_EQ(adapter.weights[0].first, "model.layers.0.mlp.down_proj.lora_A.weight");

  torch::manual_seed(53);  // another A init: LoadLoraWeights must overwrite it
  LlamaForCausalLM fresh =
      LoadPretrained(dir_ + "/base", &adapter.lora, ModelOptions{}, torch::kCPU);
  LoadLoraWeights(fresh, adapter.weights);
  fresh->eval();
  model_->eval();
  torch::Tensor ids = model_test::RandomIds(2, 6, config_.vocab_size, 54);  // [B,T]
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(TensorsClose(model_(ids), fresh(ids), 0.0));
}

TEST_F(PeftTest, LoadLoraWeightsNamesTheTensor) {
  std::vector<std::pair<std::string, torch::Tensor>> weights = model_->NamedLoraParameters();
  auto missing = weights;
  missing.pop_back();
  EXPECT_THAT(TrainErrorMessage([&] { LoadLoraWeights(model_, missing); }),
              HasSubstr("missing tensor '" + weights.back().first + "'"));
  auto unexpected = weights;
  unexpected.emplace_back("model.layers.0.self_attn.k_proj.lora_A.weight", torch::zeros({4, 32}));
  EXPECT_THAT(TrainErrorMessage([&] { LoadLoraWeights(model_, unexpected); }),
              HasSubstr("unexpected tensor 'model.layers.0.self_attn.k_proj.lora_A.weight'"));
  auto misshaped = weights;
  misshaped[0].second = torch::zeros({5, 5});
  EXPECT_THAT(TrainErrorMessage([&] { LoadLoraWeights(model_, misshaped); }),
              HasSubstr("tensor '" + weights[0].first + "' has shape [5,5]"));
}

TEST(PeftKeyTest, TableMapsBothWays) {
  EXPECT_EQ(PeftKeyFromModelName("model.layers.3.mlp.up_proj.lora_B.weight"),
            "base_model.model.model.layers.3.mlp.up_proj.lora_B.weight");
  EXPECT_EQ(ModelNameFromPeftKey("base_model.model.model.layers.3.mlp.up_proj.lora_B.weight"),
            "model.layers.3.mlp.up_proj.lora_B.weight");
  EXPECT_EQ(ModelNameFromPeftKey(
                "base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight"),
            "model.layers.0.self_attn.q_proj.lora_A.weight");
  EXPECT_THAT(TrainErrorMessage([] { ModelNameFromPeftKey("model.layers.0.q_proj.weight"); }),
              HasSubstr("not a PEFT LoRA key"));
  EXPECT_THAT(TrainErrorMessage([] { PeftKeyFromModelName("model.norm.weight"); }),
              HasSubstr("not a LoRA parameter name"));
}

TEST_F(PeftTest, BadAdapterConfigNamesTheField) {
  json config = json::parse(model_test::ReadFileBytes(dir_ + "/adapter/adapter_config.json"));
  config["peft_type"] = "IA3";
  model_test::WriteFileBytes(dir_ + "/adapter/adapter_config.json", config.dump());
  EXPECT_THAT(TrainErrorMessage([&] { ReadPeftAdapter(dir_ + "/adapter"); }),
              HasSubstr("peft_type: must be \"LORA\""));
}

TEST(GenerationTest, GreedyDecodingIsArgmaxAndStopsAtEos) {
  const LlamaConfig config = model_test::TinyConfig();
  LlamaForCausalLM model = CreateRandom(config, ModelOptions{}, 60);
  model->train();
  const std::vector<int64_t> prompt = {1, 5, 9};
  std::vector<int64_t> generated = GreedyGenerate(model, prompt, 6, /*eos_id=*/-1);
  ASSERT_EQ(generated.size(), 6u);
  EXPECT_TRUE(model->is_training());  // mode restored
  // Each token is the argmax after the sequence so far.
  std::vector<int64_t> sequence = prompt;
  torch::NoGradGuard no_grad;
  model->eval();
  for (int64_t token : generated) {
    torch::Tensor logits = model(torch::tensor(sequence).unsqueeze(0));  // [1,T,V]
    EXPECT_EQ(logits[0][-1].argmax().item<int64_t>(), token);
    sequence.push_back(token);
  }
  // Stopping at eos: the tokens before its first occurrence, eos excluded.
  const int64_t eos = generated[3];
  size_t first = 0;
  while (generated[first] != eos) ++first;
  std::vector<int64_t> stopped = GreedyGenerate(model, prompt, 6, eos);
  EXPECT_EQ(stopped, std::vector<int64_t>(generated.begin(), generated.begin() + first));
}

}  // namespace
}  // namespace tuneledger::train
