// Shape legend: B batch, T tokens, V vocab.
#include "tests/trainer/model_test_support.h"

#include <ATen/CPUGeneratorImpl.h>
#include <sys/wait.h>
#include <torch/torch.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <sstream>

namespace tuneledger::train::model_test {

std::string ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

void WriteFileBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  if (!out) ADD_FAILURE() << "cannot write " << path;
}

LlamaConfig TinyConfig() {
  LlamaConfig config;
  config.vocab_size = 40;
  config.hidden_size = 32;
  config.intermediate_size = 48;
  config.num_hidden_layers = 2;
  config.num_attention_heads = 4;
  config.num_key_value_heads = 2;
  config.head_dim = 8;
  config.rms_norm_eps = 1e-5;
  config.rope_theta = 10000.0;
  config.max_position_embeddings = 128;
  config.initializer_range = 0.2;
  config.eos_token_id = 2;
  return config;
}

void RandomizeBaseWeights(LlamaForCausalLM& model, uint64_t seed) {
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  torch::NoGradGuard no_grad;
  for (auto& [name, weight] : model->NamedBaseWeights(/*merge_lora=*/false)) {
    torch::Tensor noise = torch::empty(weight.sizes(), torch::kFloat32);  // weight's shape
    noise.normal_(0.0, 0.2, generator);
    const bool is_norm =
        name.size() >= 11 && name.compare(name.size() - 11, 11, "norm.weight") == 0;
    weight.copy_(is_norm ? noise + 1.0 : noise);
  }
}

void RandomizeLoraB(LlamaForCausalLM& model, uint64_t seed) {
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  torch::NoGradGuard no_grad;
  for (auto& [name, param] : model->NamedLoraParameters()) {
    if (name.find(".lora_B.") != std::string::npos) param.normal_(0.0, 0.1, generator);
  }
}

torch::Tensor RandomIds(int64_t batch, int64_t tokens, int64_t vocab, uint64_t seed) {
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  return torch::randint(vocab, {batch, tokens}, generator, torch::kInt64);  // [B,T]
}

double MaxAbsDiff(const torch::Tensor& expected, const torch::Tensor& actual) {
  return (expected.to(torch::kFloat64) - actual.to(torch::kFloat64)).abs().max().item<double>();
}

::testing::AssertionResult TensorsClose(const torch::Tensor& expected, const torch::Tensor& actual,
                                        double tolerance) {
  if (expected.sizes() != actual.sizes()) {
    return ::testing::AssertionFailure()
           << "shape mismatch: expected " << expected.sizes() << ", actual " << actual.sizes();
  }
  torch::Tensor e = expected.detach().to(torch::kCPU, torch::kFloat64).flatten();
  torch::Tensor a = actual.detach().to(torch::kCPU, torch::kFloat64).flatten();
  if (e.numel() == 0) return ::testing::AssertionSuccess();
  torch::Tensor diff = (e - a).abs();
  const int64_t where = diff.argmax().item<int64_t>();
  const double max_diff = diff[where].item<double>();
  if (max_diff <= tolerance && !std::isnan(max_diff)) {
    return ::testing::AssertionSuccess() << "max diff " << max_diff;
  }
  return ::testing::AssertionFailure()
         << "max abs diff " << max_diff << " > tolerance " << tolerance << " at flat index "
         << where << " of shape " << expected.sizes() << ": expected " << e[where].item<double>()
         << ", actual " << a[where].item<double>();
}

CommandResult RunCommand(const std::string& command) {
  CommandResult result;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) {
    result.output = "popen failed for: " + command;
    return result;
  }
  std::array<char, 4096> buffer;
  size_t read = 0;
  while ((read = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0) {
    result.output.append(buffer.data(), read);
  }
  const int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

CommandResult RunReference(const std::string& args) {
  return RunCommand(std::string("/usr/bin/python3 ") + TUNELEDGER_SOURCE_DIR +
                    "/tests/trainer/reference/llama_reference.py " + args);
}

CommandResult RunHfReference(const std::string& args) {
  return RunCommand(std::string(TUNELEDGER_TEST_PYTHON) + " " + TUNELEDGER_SOURCE_DIR +
                    "/tests/trainer/reference/hf_reference.py " + args);
}

}  // namespace tuneledger::train::model_test
