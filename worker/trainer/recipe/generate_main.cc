// tuneledger-generate: greedy completions of a held-out {"prompt", "completion"} set with a
// base model and (optionally) a LoRA adapter, and the exact-match rate. It answers "did the
// fine-tune learn the task?", which a falling loss alone does not.
//
//   load model (+ adapter) -> for each line: prompt ids -> greedy decode -> compare -> line
//   -> summary
//
// Output: one JSON line per example on stdout, then a summary:
//   {"type":"example","index":0,"prompt":"...","expected":"...","generated":"...","exact":true}
//   {"type":"summary","examples":100,"exact":97,"exact_match":0.97,"seconds":81.2}
// Exit codes: 0 done, 1 error (an `error` line, as tuneledger-train writes it), 2 usage.
#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/command_line.h"
#include "lm/data/jsonl_dataset.h"
#include "lm/trainer_error.h"
#include "worker/trainer/model/generation.h"
#include "worker/trainer/model/model_loader.h"
#include "worker/trainer/model/peft_adapter.h"
#include "worker/trainer/recipe/progress_reporter.h"
#include "worker/trainer/recipe/tokenizer.h"

namespace tuneledger::train {
namespace {

constexpr const char* kUsage =
    "usage: tuneledger-generate --model DIR --data FILE [--adapter DIR] [--max-new-tokens N]\n"
    "                           [--limit N] [--device auto|cpu|cuda] [--threads N]\n"
    "  Greedy-decodes a completion for every {\"prompt\", \"completion\"} line of FILE with the\n"
    "  model in DIR (a Hugging Face folder) and the PEFT adapter, if given; prints one JSON line\n"
    "  per example and a summary with the exact-match rate (generated text == completion,\n"
    "  both without leading and trailing whitespace).\n"
    "  --max-new-tokens  tokens generated at most per example [64]\n"
    "  --limit           the first N lines only [all]\n";

struct Flags {
  std::string model;
  std::string adapter;
  std::string data;
  int max_new_tokens = 64;
  int64_t limit = 0;  // 0 = every line
  std::string device = "auto";
  int threads = 0;  // 0 = the machine's cores
  bool help = false;
};

std::string ParseFlags(const std::vector<std::string>& args, Flags& flags) {
  CommandLineHandlers handlers;
  handlers.kind = [](std::string_view name) -> std::optional<FlagKind> {
    if (name == "help") return FlagKind::kSwitch;
    for (const char* value_flag :
         {"model", "adapter", "data", "max-new-tokens", "limit", "device", "threads"}) {
      if (name == value_flag) return FlagKind::kValue;
    }
    return std::nullopt;
  };
  handlers.apply = [&](std::string_view name, const std::string& value) -> std::string {
    if (name == "help") flags.help = value == "true";
    if (name == "model") flags.model = value;
    if (name == "adapter") flags.adapter = value;
    if (name == "data") flags.data = value;
    if (name == "device") {
      if (value != "auto" && value != "cpu" && value != "cuda") {
        return "must be auto, cpu or cuda, got '" + value + "'";
      }
      flags.device = value;
    }
    if (name == "max-new-tokens" || name == "limit" || name == "threads") {
      const std::optional<int64_t> number = ParseIntFlag(value, 1, 1'000'000);
      if (!number) return "must be a positive integer, got '" + value + "'";
      if (name == "max-new-tokens") flags.max_new_tokens = static_cast<int>(*number);
      if (name == "limit") flags.limit = *number;
      if (name == "threads") flags.threads = static_cast<int>(*number);
    }
    return "";
  };
  if (std::string problem = ParseCommandLine(args, handlers); !problem.empty()) return problem;
  if (!flags.help && (flags.model.empty() || flags.data.empty())) {
    return "--model and --data are required";
  }
  return "";
}

struct HeldOutExample {
  std::string prompt;
  std::string completion;
};

// The {"prompt", "completion"} lines of `path`; other formats are an error naming the line.
std::vector<HeldOutExample> ReadExamples(const std::string& path, int64_t limit) {
  std::ifstream in(path);
  if (!in) throw TrainError(path + ": cannot open");
  std::vector<HeldOutExample> examples;
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const nlohmann::json record = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!record.is_object() || !record.contains("prompt") || !record.contains("completion") ||
        !record["prompt"].is_string() || !record["completion"].is_string()) {
      throw TrainError(path + ":" + std::to_string(number) +
                       ": not a {\"prompt\": string, \"completion\": string} object");
    }
    examples.push_back({record["prompt"], record["completion"]});
    if (limit > 0 && static_cast<int64_t>(examples.size()) == limit) break;
  }
  if (examples.empty()) throw TrainError(path + ": no {\"prompt\", \"completion\"} lines");
  return examples;
}

std::string Trim(const std::string& text) {
  const size_t begin = text.find_first_not_of(" \t\r\n");
  if (begin == std::string::npos) return "";
  return text.substr(begin, text.find_last_not_of(" \t\r\n") - begin + 1);
}

LlamaForCausalLM LoadModel(const Flags& flags, torch::Device device) {
  ModelOptions options;
  options.base_dtype = device.is_cuda() ? torch::kBFloat16 : torch::kFloat32;
  options.activation_dtype = options.base_dtype;
  if (flags.adapter.empty()) return LoadPretrained(flags.model, nullptr, options, device);
  const PeftAdapter adapter = ReadPeftAdapter(flags.adapter);
  LlamaForCausalLM model = LoadPretrained(flags.model, &adapter.lora, options, device);
  InitLoraFromAdapter(model, adapter.lora, flags.adapter);
  return model;
}

int Run(const Flags& flags) {
  const auto start = std::chrono::steady_clock::now();
  at::set_num_threads(flags.threads > 0
                          ? flags.threads
                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  if (flags.device == "cuda" && !torch::cuda::is_available()) {
    throw TrainError("--device cuda: no CUDA device is available to this LibTorch");
  }
  const torch::Device device =
      flags.device == "cuda" || (flags.device == "auto" && torch::cuda::is_available())
          ? torch::Device(torch::kCUDA, 0)
          : torch::Device(torch::kCPU);
  const std::vector<HeldOutExample> examples = ReadExamples(flags.data, flags.limit);
  const std::unique_ptr<Tokenizer> tokenizer = LoadTokenizer(flags.model);
  LlamaForCausalLM model = LoadModel(flags, device);
  std::cerr << "tuneledger-generate: " << examples.size() << " examples on " << device.str()
            << (flags.adapter.empty() ? "" : " with adapter " + flags.adapter) << "\n";

  int64_t exact = 0;
  for (size_t i = 0; i < examples.size(); ++i) {
    const std::vector<int64_t> prompt = PromptIds(*tokenizer, examples[i].prompt);
    if (prompt.empty())
      throw TrainError(flags.data + ": example " + std::to_string(i) + " has an empty prompt");
    const std::string generated =
        tokenizer->Decode(GreedyGenerate(model, prompt, flags.max_new_tokens, tokenizer->eos_id()));
    const bool match = Trim(generated) == Trim(examples[i].completion);
    exact += match ? 1 : 0;
    std::cout << nlohmann::ordered_json{{"type", "example"},
                                        {"index", i},
                                        {"prompt", examples[i].prompt},
                                        {"expected", examples[i].completion},
                                        {"generated", generated},
                                        {"exact", match}}
                     .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
              << std::endl;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << nlohmann::ordered_json{{"type", "summary"},
                                      {"examples", examples.size()},
                                      {"exact", exact},
                                      {"exact_match", static_cast<double>(exact) /
                                                          static_cast<double>(examples.size())},
                                      {"seconds", seconds}}
                   .dump()
            << std::endl;
  return 0;
}

}  // namespace
}  // namespace tuneledger::train

int main(int argc, char** argv) {
  tuneledger::train::Flags flags;
  const std::string problem =
      tuneledger::train::ParseFlags(tuneledger::CommandLineArguments(argc, argv), flags);
  if (flags.help) {
    std::cout << tuneledger::train::kUsage;
    return 0;
  }
  if (!problem.empty()) {
    std::cerr << "tuneledger-generate: " << problem << "\n" << tuneledger::train::kUsage;
    return 2;
  }
  tuneledger::train::ProgressReporter reporter(std::cout);
  return tuneledger::train::RunReportingErrors("tuneledger-generate", reporter,
                                               [&] { return tuneledger::train::Run(flags); });
}
