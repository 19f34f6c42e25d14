// Helpers shared by the model-side trainer tests: tiny random configs, tensor comparison that
// prints expected/actual/max diff, and running the independent Python reference
// (reference/llama_reference.py) with /usr/bin/python3 and the real libraries
// (reference/hf_reference.py) with the project's Python environment. Temp folders:
// tests/testing/temp_dir.h.
//
// Shape legend: B batch, T tokens, D hidden, H heads, Hkv kv heads, Dh head dim, V vocab.
#ifndef TUNELEDGER_TESTS_TRAINER_MODEL_TEST_SUPPORT_H_
#define TUNELEDGER_TESTS_TRAINER_MODEL_TEST_SUPPORT_H_

#include <gtest/gtest.h>
#include <torch/types.h>

#include <cstdint>
#include <exception>
#include <string>

#include "lm/model_config.h"
#include "lm/trainer_error.h"
#include "worker/trainer/model/llama_model.h"

namespace tuneledger::train::model_test {

std::string ReadFileBytes(const std::string& path);
void WriteFileBytes(const std::string& path, const std::string& bytes);

// V=40, D=32, F=48, 2 layers, H=4, Hkv=2 (GQA), Dh=8, untied, rope_theta 10000, weights with
// std 0.2 so that the logits are far from uniform.
LlamaConfig TinyConfig();

// Gives every base weight random values (norms 1 + noise, biases noise too), drawn from a
// private generator, so that no weight (bias, norm) is trivially zero or one.
void RandomizeBaseWeights(LlamaForCausalLM& model, uint64_t seed);
// Random non-zero LoRA B (a fresh adapter has B = 0).
void RandomizeLoraB(LlamaForCausalLM& model, uint64_t seed);

// [B,T] int64 token ids in [0, vocab).
torch::Tensor RandomIds(int64_t batch, int64_t tokens, int64_t vocab, uint64_t seed);

double MaxAbsDiff(const torch::Tensor& expected, const torch::Tensor& actual);
// Same shape and max |expected - actual| <= tolerance; the failure message prints both
// shapes, the max diff and where, and the two values there.
::testing::AssertionResult TensorsClose(const torch::Tensor& expected, const torch::Tensor& actual,
                                        double tolerance);

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};
CommandResult RunCommand(const std::string& command);
// Runs reference/llama_reference.py with `args`; the result's output is for messages.
CommandResult RunReference(const std::string& args);
// Runs reference/hf_reference.py (transformers, PEFT) with the project's Python environment.
CommandResult RunHfReference(const std::string& args);

// The message of the TrainError `body` throws, or "" (and a test failure) when it throws
// nothing or something else.
template <typename Body>
std::string TrainErrorMessage(Body&& body) {
  try {
    body();
  } catch (const TrainError& error) {
    return error.what();
  } catch (const std::exception& error) {
    ADD_FAILURE() << "expected a TrainError, got another exception: " << error.what();
    return "";
  }
  ADD_FAILURE() << "expected a TrainError, nothing was thrown";
  return "";
}

}  // namespace tuneledger::train::model_test

#endif  // TUNELEDGER_TESTS_TRAINER_MODEL_TEST_SUPPORT_H_
