// Loading Hugging Face model folders: config.json rules, sharded indexes, bf16/fp16 storage,
// tied embeddings, and errors that name the tensor or the field.
//
// Shape legend: B batch, T tokens, D hidden, V vocab.
#include "worker/trainer/model/model_loader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lm/model_config.h"
#include "tests/testing/temp_dir.h"
#include "tests/trainer/model_test_support.h"
#include "worker/trainer/model/llama_model.h"
#include "worker/trainer/model/safetensors_reader.h"
#include "worker/trainer/model/safetensors_writer.h"

namespace tuneledger::train {
namespace {

using model_test::TensorsClose;
using model_test::TrainErrorMessage;
using nlohmann::json;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::tuneledger::testing::TempDir;

// All tensors of a saved model folder, in file order.
std::vector<std::pair<std::string, torch::Tensor>> ReadAll(const std::string& path) {
  SafetensorsFile file = SafetensorsFile::Open(path);
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const std::string& name : file.names()) tensors.emplace_back(name, file.Tensor(name));
  return tensors;
}

class LoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = model_test::TinyConfig();
    model_ = CreateRandom(config_, ModelOptions{}, /*seed=*/40);
    model_test::RandomizeBaseWeights(model_, 41);
    model_->eval();
    dir_ = temp_dir_.File("model");
    SaveFullModel(model_, dir_, torch::kFloat32);
    ids_ = model_test::RandomIds(2, 7, config_.vocab_size, 42);  // [B,T]
    torch::NoGradGuard no_grad;
    logits_ = model_(ids_);  // [B,T,V]
  }

  torch::Tensor Logits(LlamaForCausalLM model) {
    torch::NoGradGuard no_grad;
    model->eval();
    return model(ids_);  // [B,T,V]
  }

  std::string LoadError() {
    return TrainErrorMessage([&] { LoadPretrained(dir_, nullptr, ModelOptions{}, torch::kCPU); });
  }

  void RewriteWeights(const std::vector<std::pair<std::string, torch::Tensor>>& tensors) {
    WriteSafetensors(dir_ + "/model.safetensors", tensors);
  }

  void EditConfig(const std::function<void(json&)>& edit) {
    json config = json::parse(model_test::ReadFileBytes(dir_ + "/config.json"));
    edit(config);
    model_test::WriteFileBytes(dir_ + "/config.json", config.dump());
  }

  LlamaConfig config_;
  LlamaForCausalLM model_{nullptr};
  TempDir temp_dir_;
  std::string dir_;  // temp_dir_/model
  torch::Tensor ids_;
  torch::Tensor logits_;
};

TEST_F(LoaderTest, SavedModelLoadsBackExactly) {
  EXPECT_TRUE(TensorsClose(
      logits_, Logits(LoadPretrained(dir_, nullptr, ModelOptions{}, torch::kCPU)), 0.0));
}

TEST_F(LoaderTest, ShardedIndexLoads) {
  std::vector<std::pair<std::string, torch::Tensor>> all = ReadAll(dir_ + "/model.safetensors");
  std::filesystem::remove(dir_ + "/model.safetensors");
  std::vector<std::pair<std::string, torch::Tensor>> first(all.begin(),
                                                           all.begin() + all.size() / 2);
  std::vector<std::pair<std::string, torch::Tensor>> second(all.begin() + all.size() / 2,
                                                            all.end());
  WriteSafetensors(dir_ + "/model-00001-of-00002.safetensors", first);
  WriteSafetensors(dir_ + "/model-00002-of-00002.safetensors", second);
  json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", json::object()}};
  for (const auto& [name, t] : first)
    index["weight_map"][name] = "model-00001-of-00002.safetensors";
  for (const auto& [name, t] : second)
    index["weight_map"][name] = "model-00002-of-00002.safetensors";
  model_test::WriteFileBytes(dir_ + "/model.safetensors.index.json", index.dump());
  EXPECT_TRUE(TensorsClose(
      logits_, Logits(LoadPretrained(dir_, nullptr, ModelOptions{}, torch::kCPU)), 0.0));

  // A weight_map that points at the wrong shard names the tensor.
  const std::string moved = first.front().first;
  index["weight_map"][moved] = "model-00002-of-00002.safetensors";
  model_test::WriteFileBytes(dir_ + "/model.safetensors.index.json", index.dump());
  EXPECT_THAT(LoadError(), HasSubstr("tensor '" + moved + "' is not in shard model-00002"));
  // Shards outside the model folder are refused.
  index["weight_map"][moved] = "../elsewhere.safetensors";
  model_test::WriteFileBytes(dir_ + "/model.safetensors.index.json", index.dump());
  EXPECT_THAT(LoadError(), HasSubstr("not a file in the model folder"));
}

TEST_F(LoaderTest, Bf16AndFp16StoredWeightsLoad) {
  for (torch::Dtype stored : {torch::kBFloat16, torch::kFloat16}) {
    SCOPED_TRACE(c10::toString(stored));
    const TempDir temp_dir;
    const std::string dir = temp_dir.File("m");
    SaveFullModel(model_, dir, stored);
    EXPECT_EQ(SafetensorsDtype(SafetensorsFile::Open(dir + "/model.safetensors")
                                   .Entry("model.layers.0.self_attn.q_proj.weight")
                                   .dtype),
              stored);
    EXPECT_EQ(LlamaConfig::FromFile(dir + "/config.json").torch_dtype,
              stored == torch::kBFloat16 ? "bfloat16" : "float16");
    LlamaForCausalLM loaded = LoadPretrained(dir, nullptr, ModelOptions{}, torch::kCPU);
    for (const auto& [name, weight] : loaded->NamedBaseWeights(false)) {
      torch::Tensor original = model_->named_parameters()[name];
      EXPECT_TRUE(torch::equal(weight, original.to(stored).to(torch::kFloat32))) << name;
    }
    // Rounding the weights moves the logits only a little.
    EXPECT_TRUE(TensorsClose(logits_, Logits(loaded), 0.1));
  }
}

TEST_F(LoaderTest, TiedEmbeddingsShareTheEmbeddingMatrix) {
  LlamaConfig tied = config_;
  tied.tie_word_embeddings = true;
  LlamaForCausalLM model = CreateRandom(tied, ModelOptions{}, 43);
  model_test::RandomizeBaseWeights(model, 44);
  const TempDir temp_dir;
  const std::string dir = temp_dir.File("tied");
  SaveFullModel(model, dir, torch::kFloat32);
  EXPECT_FALSE(SafetensorsFile::Open(dir + "/model.safetensors").Contains("lm_head.weight"));
  EXPECT_TRUE(json::parse(model_test::ReadFileBytes(dir + "/config.json"))["tie_word_embeddings"]);
  LlamaForCausalLM loaded = LoadPretrained(dir, nullptr, ModelOptions{}, torch::kCPU);
  torch::Tensor expected = Logits(model);  // [B,T,V]
  EXPECT_TRUE(TensorsClose(expected, Logits(loaded), 0.0));
  // The logits are hidden states times the embedding matrix.
  torch::NoGradGuard no_grad;
  torch::Tensor hidden = loaded->model(ids_);  // [B,T,D]
  EXPECT_TRUE(
      TensorsClose(expected, torch::matmul(hidden, loaded->model->embed_tokens->weight.t()), 1e-5));
  // A tied checkpoint that still carries lm_head.weight loads (HF ignores it too).
  auto tensors = ReadAll(dir + "/model.safetensors");
  tensors.emplace_back("lm_head.weight", torch::zeros({tied.vocab_size, tied.hidden_size}));
  WriteSafetensors(dir + "/model.safetensors", tensors);
  EXPECT_TRUE(TensorsClose(expected,
                           Logits(LoadPretrained(dir, nullptr, ModelOptions{}, torch::kCPU)), 0.0));
}

TEST_F(LoaderTest, MissingTensorIsNamed) {
  auto tensors = ReadAll(dir_ + "/model.safetensors");
  tensors.erase(
      std::remove_if(tensors.begin(), tensors.end(),
                     [](const auto& t) { return t.first == "model.layers.1.mlp.up_proj.weight"; }),
      tensors.end());
  RewriteWeights(tensors);
  EXPECT_THAT(LoadError(), HasSubstr("missing tensor 'model.layers.1.mlp.up_proj.weight'"));
}

TEST_F(LoaderTest, UnexpectedTensorIsNamed) {
  auto tensors = ReadAll(dir_ + "/model.safetensors");
  tensors.emplace_back("model.layers.0.self_attn.q_proj.bias", torch::zeros({32}));
  RewriteWeights(tensors);
  EXPECT_THAT(LoadError(), HasSubstr("unexpected tensor 'model.layers.0.self_attn.q_proj.bias'"));
}

TEST_F(LoaderTest, OldRotaryBuffersAreTolerated) {
  auto tensors = ReadAll(dir_ + "/model.safetensors");
  tensors.emplace_back("model.layers.0.self_attn.rotary_emb.inv_freq", torch::ones({4}));
  RewriteWeights(tensors);
  EXPECT_TRUE(TensorsClose(
      logits_, Logits(LoadPretrained(dir_, nullptr, ModelOptions{}, torch::kCPU)), 0.0));
}

TEST_F(LoaderTest, MisShapedTensorIsNamedWithBothShapes) {
  auto tensors = ReadAll(dir_ + "/model.safetensors");
  for (auto& [name, t] : tensors) {
    if (name == "model.layers.0.self_attn.k_proj.weight") t = torch::zeros({8, 32});
  }
  RewriteWeights(tensors);
  EXPECT_THAT(LoadError(), AllOf(HasSubstr("tensor 'model.layers.0.self_attn.k_proj.weight'"),
                                 HasSubstr("shape [8,32]"), HasSubstr("expects [16,32]")));
}

TEST_F(LoaderTest, IntegerStoredWeightIsAnError) {
  auto tensors = ReadAll(dir_ + "/model.safetensors");
  for (auto& [name, t] : tensors) {
    if (name == "model.norm.weight") t = torch::ones({32}, torch::kInt32);
  }
  RewriteWeights(tensors);
  EXPECT_THAT(LoadError(), HasSubstr("tensor 'model.norm.weight' is stored as I32"));
}

TEST_F(LoaderTest, MissingWeightsFileIsAnError) {
  std::filesystem::remove(dir_ + "/model.safetensors");
  EXPECT_THAT(LoadError(), HasSubstr("no model.safetensors or model.safetensors.index.json"));
}

struct ConfigRule {
  const char* name;
  std::function<void(json&)> edit;
  const char* expected_message;
};

TEST_F(LoaderTest, UnsupportedArchitecturesNameTheField) {
  const std::vector<ConfigRule> rules = {
      {"model_type", [](json& c) { c["model_type"] = "gpt2"; }, "model_type: unsupported 'gpt2'"},
      {"architectures", [](json& c) { c["architectures"] = {"MistralForCausalLM"}; },
       "architectures: unsupported \"MistralForCausalLM\""},
      {"hidden_act", [](json& c) { c["hidden_act"] = "gelu"; }, "hidden_act: unsupported"},
      {"rope_scaling",
       [](json& c) {
         c["rope_scaling"] = {{"type", "longrope"}, {"factor", 2}};
       },
       "rope_scaling.rope_type: unsupported \"longrope\""},
      {"rope_scaling_factor_missing",
       [](json& c) {
         c["rope_scaling"] = {{"rope_type", "linear"}};
       },
       "rope_scaling.factor: missing"},
      {"rope_scaling_unknown_key",
       [](json& c) {
         c["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 2}, {"long_factor", 3}};
       },
       "rope_scaling.long_factor: unsupported RoPE parameter"},
      {"sliding_window", [](json& c) { c["use_sliding_window"] = true; }, "use_sliding_window"},
      {"kv_heads", [](json& c) { c["num_key_value_heads"] = 3; },
       "num_key_value_heads: must divide num_attention_heads (4), got 3"},
      {"missing_hidden", [](json& c) { c.erase("hidden_size"); }, "hidden_size: missing"},
      {"bad_vocab", [](json& c) { c["vocab_size"] = -5; },
       "vocab_size: must be a positive integer"},
      {"odd_head_dim", [](json& c) { c["head_dim"] = 7; }, "head_dim: must be even"},
      {"rope_type",
       [](json& c) {
         c["rope_parameters"] = {{"rope_type", "longrope"}, {"rope_theta", 1e4}};
       },
       "rope_parameters.rope_type: unsupported \"longrope\""},
      {"rope_parameters_theta",
       [](json& c) {
         c["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", -1}};
       },
       "rope_parameters.rope_theta: must be a positive number"},
      {"sliding_layers",
       [](json& c) {
         c["layer_types"] = {"full_attention", "sliding_attention"};
       },
       "layer_types: unsupported \"sliding_attention\""},
  };
  for (const ConfigRule& rule : rules) {
    SCOPED_TRACE(rule.name);
    SaveFullModel(model_, dir_, torch::kFloat32);  // a fresh, valid config.json
    EditConfig(rule.edit);
    EXPECT_THAT(LoadError(), AllOf(HasSubstr("config.json"), HasSubstr(rule.expected_message)));
  }
}

TEST(ModelConfigTest, DefaultsAndQwen2Rules) {
  LlamaConfig llama = LlamaConfig::FromJson(json{{"model_type", "llama"},
                                                 {"vocab_size", 100},
                                                 {"hidden_size", 64},
                                                 {"intermediate_size", 128},
                                                 {"num_hidden_layers", 2},
                                                 {"num_attention_heads", 8},
                                                 {"eos_token_id", {7, 8}}});
  EXPECT_EQ(llama.num_key_value_heads, 8);
  EXPECT_EQ(llama.head_dim, 8);
  EXPECT_DOUBLE_EQ(llama.rope_theta, 10000.0);
  EXPECT_FALSE(llama.tie_word_embeddings);
  EXPECT_FALSE(llama.attention_bias);
  EXPECT_EQ(llama.eos_token_id, 7);
  EXPECT_FALSE(llama.pad_token_id.has_value());

  LlamaConfig qwen = LlamaConfig::FromJson(json{{"model_type", "qwen2"},
                                                {"architectures", {"Qwen2ForCausalLM"}},
                                                {"vocab_size", 100},
                                                {"hidden_size", 64},
                                                {"intermediate_size", 128},
                                                {"num_hidden_layers", 2},
                                                {"num_attention_heads", 8},
                                                {"num_key_value_heads", 2},
                                                {"rope_theta", 1000000.0},
                                                {"tie_word_embeddings", true}});
  EXPECT_TRUE(qwen.attention_bias);
  EXPECT_FALSE(qwen.attention_output_bias);
  EXPECT_EQ(qwen.num_kv_groups(), 4);
  // transformers 5 spells rope_theta and torch_dtype as rope_parameters.rope_theta and dtype.
  LlamaConfig v5 = LlamaConfig::FromJson(
      json{{"model_type", "llama"},
           {"vocab_size", 100},
           {"hidden_size", 64},
           {"intermediate_size", 128},
           {"num_hidden_layers", 2},
           {"num_attention_heads", 8},
           {"dtype", "bfloat16"},
           {"rope_parameters", {{"rope_type", "default"}, {"rope_theta", 5e5}}}});
  EXPECT_DOUBLE_EQ(v5.rope_theta, 5e5);
  EXPECT_EQ(v5.torch_dtype, "bfloat16");
  // Mistral: a sliding window, which sequences must fit.
  LlamaConfig mistral = LlamaConfig::FromJson(json{{"model_type", "mistral"},
                                                   {"architectures", {"MistralForCausalLM"}},
                                                   {"vocab_size", 100},
                                                   {"hidden_size", 64},
                                                   {"intermediate_size", 128},
                                                   {"num_hidden_layers", 2},
                                                   {"num_attention_heads", 8},
                                                   {"sliding_window", 512}});
  EXPECT_EQ(mistral.sliding_window, 512);
  mistral.CheckSequenceLength(512);
  EXPECT_THAT(model_test::TrainErrorMessage([&] { mistral.CheckSequenceLength(513); }),
              HasSubstr("spec.training.seq_len: 513 is longer than the model's sliding_window"));
  EXPECT_EQ(LlamaConfig::FromJson(mistral.ToJson()).ToJson(), mistral.ToJson());
  // ToJson round-trips.
  LlamaConfig again = LlamaConfig::FromJson(qwen.ToJson());
  EXPECT_EQ(again.ToJson(), qwen.ToJson());
}

}  // namespace
}  // namespace tuneledger::train
