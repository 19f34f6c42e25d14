// The temp dir, jobs and workers of the server benchmarks: a fresh folder per benchmark run, a
// spec that passes validation (with its model folder and data file made in that folder, so the
// submit-time input check and the pre-flight estimate run for real: the model folder holds a real
// model's config.json and tokenizer, and the data 200 chat examples) and a CPU worker.
// Thread safety: pure functions.
#ifndef TUNELEDGER_BENCH_BENCH_JOBS_H_
#define TUNELEDGER_BENCH_BENCH_JOBS_H_

#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "tests/testing/source_path.h"
#include "tests/testing/temp_dir.h"
#include "tuneledger/v1/jobs.pb.h"
#include "tuneledger/v1/worker.pb.h"

namespace tuneledger::bench {

// A fresh folder for one benchmark run, removed when it goes away (the tests' TempDir), so every
// benchmark makes its own data. It sits under $TMPDIR (default /tmp): point TMPDIR at the disk
// you want measured, because SQLite's fsync cost is a property of that disk. INTERNAL when it
// cannot be made.
inline absl::StatusOr<std::unique_ptr<testing::TempDir>> MakeBenchTempDir() {
  try {
    return std::make_unique<testing::TempDir>("tl-bench");
  } catch (const std::exception& error) {
    return absl::InternalError(error.what());
  }
}

// The model folder the bench spec names: SmolLM2-135M-Instruct's config.json, tokenizer.json
// (1.5 MB) and tokenizer_config.json (its chat template) when deploy/install-deps.sh has made
// models/smollm2-135m-instruct, else models/tiny-llama's config and byte tokenizer; the weights
// file is a stand-in (the server only checks that one is there). Returns the source folder.
inline std::string WriteBenchModel(const testing::TempDir& dir) {
  namespace fs = std::filesystem;
  const std::string smol = testing::SourcePath("models/smollm2-135m-instruct");
  const bool real = fs::exists(fs::path(smol) / "tokenizer.json");
  const std::string source = real ? smol : testing::SourcePath("models/tiny-llama");
  const std::vector<std::string> files =
      real ? std::vector<std::string>{"config.json", "tokenizer.json", "tokenizer_config.json"}
           : std::vector<std::string>{"config.json", "byte_tokenizer.json"};
  for (const std::string& name : files) {
    std::ifstream in(fs::path(source) / name, std::ios::binary);
    std::ostringstream contents;
    contents << in.rdbuf();
    if (!in) throw std::runtime_error("cannot read " + source + "/" + name);
    dir.Write("model/" + name, contents.str());
  }
  dir.Write("model/model.safetensors", "{}");
  return source;
}

// A spec as `tunectl submit` sends it for a small LoRA job (defaults left to the server).
// `dir` gets a model folder (WriteBenchModel) and a JSONL file of 200 chat examples that
// ValidateJobInputs accepts; INTERNAL when they cannot be written.
inline absl::StatusOr<v1::JobSpec> MakeBenchSpec(const testing::TempDir& dir) {
  std::string train;
  try {
    WriteBenchModel(dir);
    std::string lines;
    for (int i = 0; i < 200; ++i) {
      absl::StrAppend(&lines, R"({"messages": [{"role": "user", "content": "Write a card for )",
                      "guest ", i, R"("}, {"role": "assistant", "content": "Guest )", i,
                      R"( | table )", i % 12, R"( | vegetarian"}]})", "\n");
    }
    train = dir.Write("train.jsonl", lines);
  } catch (const std::exception& error) {
    return absl::InternalError(error.what());
  }
  v1::JobSpec spec;
  spec.set_name("bench job");
  spec.set_model_path(dir.File("model"));
  spec.set_train_path(train);
  spec.mutable_training()->set_max_steps(1000);
  spec.mutable_budget()->set_usd(25);
  return spec;
}

inline v1::WorkerInfo BenchWorker() {
  v1::WorkerInfo info;
  info.set_hostname("bench-host");
  info.set_accelerator("cpu");
  info.set_gpus(1);
  info.set_price_per_gpu_hour(2.5);
  info.set_spot(true);
  return info;
}

}  // namespace tuneledger::bench

#endif  // TUNELEDGER_BENCH_BENCH_JOBS_H_
