// tuneledger-pretrain: trains a small Llama model from scratch (every weight trainable) on
// {"text"} JSONL with the byte-level tokenizer, and saves it as a Hugging Face model folder
// (config.json + model.safetensors + byte_tokenizer.json). It builds the bundled base model
// (models/build_tiny_llama.sh) from the same parts as tuneledger-train: dataset, batcher,
// AdamW, schedule and the named steps of TrainLoop.
//
//   tuneledger-pretrain --config CONFIG.json --train FILE --valid FILE --out DIR
//                       [--steps 3000] [--batch-size 32] [--seq-len 128] [--lr 3e-3]
//                       [--warmup 100] [--seed 1] [--threads N] [--eval-every 250]
//                       [--storage bf16|fp32]
// Progress lines on stdout as tuneledger-train writes them; exit 0 / 1 (error line) / 2.
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "base/command_line.h"
#include "lm/data/byte_tokenizer.h"
#include "lm/data/jsonl_dataset.h"
#include "lm/model_config.h"
#include "lm/trainer_error.h"
#include "worker/trainer/model/model_loader.h"
#include "worker/trainer/recipe/batcher.h"
#include "worker/trainer/recipe/loss_scaler.h"
#include "worker/trainer/recipe/lr_schedule.h"
#include "worker/trainer/recipe/optimizer_setup.h"
#include "worker/trainer/recipe/progress_reporter.h"
#include "worker/trainer/recipe/train_loop.h"

namespace tuneledger::train {
namespace {

namespace fs = std::filesystem;

constexpr const char* kUsage =
    "usage: tuneledger-pretrain --config CONFIG.json --train FILE --valid FILE --out DIR\n"
    "         [--steps N] [--batch-size B] [--seq-len L] [--lr X] [--warmup W] [--seed S]\n"
    "         [--threads N] [--eval-every N] [--storage bf16|fp32]\n";

// Flags as strings with their defaults; required ones start empty.
std::map<std::string, std::string> DefaultFlags() {
  return {{"config", ""},     {"train", ""},        {"valid", ""},      {"out", ""},
          {"steps", "3000"},  {"batch-size", "32"}, {"seq-len", "128"}, {"lr", "3e-3"},
          {"warmup", "100"},  {"seed", "1"},        {"threads", "0"},   {"eval-every", "250"},
          {"storage", "bf16"}};
}

int Run(const std::map<std::string, std::string>& flags, ProgressReporter& reporter) {
  auto number = [&](const std::string& name) {
    try {
      return std::stod(flags.at(name));
    } catch (const std::exception&) {
      throw TrainError("--" + name + ": not a number: " + flags.at(name));
    }
  };
  const int threads = static_cast<int>(number("threads")) > 0
                          ? static_cast<int>(number("threads"))
                          : std::max(1u, std::thread::hardware_concurrency());
  at::set_num_threads(threads);
  const int64_t seed = static_cast<int64_t>(number("seed"));
  torch::manual_seed(static_cast<uint64_t>(seed));

  const LlamaConfig config = LlamaConfig::FromFile(flags.at("config"));
  ByteTokenizer tokenizer;
  if (config.vocab_size < tokenizer.vocab_size()) {
    throw TrainError(flags.at("config") + ": vocab_size must be >= " +
                     std::to_string(tokenizer.vocab_size()) + " for the byte tokenizer");
  }
  const DatasetOptions data_options{static_cast<int>(number("seq-len")), config.vocab_size};
  const TokenizedDataset train = LoadJsonlDataset(flags.at("train"), tokenizer, data_options);
  const TokenizedDataset valid = LoadJsonlDataset(flags.at("valid"), tokenizer, data_options);

  ModelOptions model_options;
  model_options.train_base = true;
  LlamaForCausalLM model = CreateRandom(config, model_options, static_cast<uint64_t>(seed));

  const int batch_size = static_cast<int>(number("batch-size"));
  const int64_t total_steps = static_cast<int64_t>(number("steps"));
  TrainLoopParts parts;
  parts.model = model;
  parts.parameters = model->TrainableParameters();
  const auto optimizer = MakeAdamW(parts.parameters, number("lr"), /*weight_decay=*/0.1);
  LengthGroupedBatcher batcher(train.examples, batch_size, seed, tokenizer.pad_id());
  const std::vector<Batch> eval_batches =
      MakeEvalBatches(valid.examples, batch_size, tokenizer.pad_id());
  const LrSchedule schedule(LrScheduleKind::kCosine, number("lr"),
                            static_cast<int64_t>(number("warmup")), total_steps);
  DynamicLossScaler loss_scaler(/*enabled=*/false);
  parts.optimizer = optimizer.get();
  parts.schedule = &schedule;
  parts.loss_scaler = &loss_scaler;
  parts.batcher = &batcher;
  parts.eval_batches = &eval_batches;
  parts.reporter = &reporter;
  DataParallel single_process;
  parts.data_parallel = &single_process;
  TrainLoopOptions options;
  options.total_steps = total_steps;
  options.seed = seed;
  options.eval_every_steps = static_cast<int>(number("eval-every"));
  options.checkpoint_every_steps = 0;  // minutes-long run: a rerun is cheaper than resuming
  TrainLoop loop(parts, options);

  int64_t total_params = 0;
  for (const auto& parameter : parts.parameters) total_params += parameter.numel();
  reporter.Started({total_steps, 0, total_params, total_params, "cpu", "fp32"});
  while (!loop.finished()) {
    const std::vector<Batch> micro_batches = loop.NextBatch();
    const StepResult result = loop.ForwardBackward(micro_batches);
    loop.OptimizerStep();
    loop.Report(result);
    loop.MaybeEvaluate();
  }

  const std::string out = flags.at("out");
  const torch::Dtype storage = flags.at("storage") == "fp32" ? torch::kFloat32 : torch::kBFloat16;
  SaveFullModel(model, out, storage);
  std::ofstream tokenizer_config(fs::path(out) / ByteTokenizer::kConfigFileName);
  tokenizer_config << ByteTokenizer::ConfigJson();
  if (!tokenizer_config) throw TrainError(out + ": cannot write byte_tokenizer.json");
  DoneLine done;
  done.step = loop.state().step;
  done.adapter_dir = fs::absolute(out).string();
  done.train_loss = loop.RecentTrainLoss();
  done.eval_loss = loop.state().last_eval_loss;
  reporter.Done(done);
  return 0;
}

}  // namespace
}  // namespace tuneledger::train

int main(int argc, char** argv) {
  auto flags = tuneledger::train::DefaultFlags();
  bool help = false;
  tuneledger::CommandLineHandlers handlers;
  handlers.kind = [&](std::string_view name) -> std::optional<tuneledger::FlagKind> {
    if (name == "help") return tuneledger::FlagKind::kSwitch;
    if (flags.count(std::string(name)) > 0) return tuneledger::FlagKind::kValue;
    return std::nullopt;
  };
  handlers.apply = [&](std::string_view name, const std::string& value) {
    if (name == "help") {
      help = value == "true";
    } else {
      flags[std::string(name)] = value;
    }
    return std::string();
  };
  std::string problem =
      tuneledger::ParseCommandLine(tuneledger::CommandLineArguments(argc, argv), handlers);
  if (help) {
    std::cout << tuneledger::train::kUsage;
    return 0;
  }
  for (const char* required : {"config", "train", "valid", "out"}) {
    if (problem.empty() && flags[required].empty()) {
      problem = std::string("--") + required + " is required";
    }
  }
  if (!problem.empty()) {
    std::cerr << "tuneledger-pretrain: " << problem << "\n" << tuneledger::train::kUsage;
    return 2;
  }
  tuneledger::train::ProgressReporter reporter(std::cout);
  return tuneledger::train::RunReportingErrors(
      "tuneledger-pretrain", reporter, [&] { return tuneledger::train::Run(flags, reporter); });
}
