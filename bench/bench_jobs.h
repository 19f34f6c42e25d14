// The temp dir, jobs and workers of the server benchmarks: a fresh folder per benchmark run, a
// spec that passes validation (with its model folder and data file made in that folder, so the
// submit-time input check runs for real) and a CPU worker.
// Thread safety: pure functions.
#ifndef TUNELEDGER_BENCH_BENCH_JOBS_H_
#define TUNELEDGER_BENCH_BENCH_JOBS_H_

#include <exception>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
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

// A spec as `tunectl submit` sends it for a small LoRA job (defaults left to the server).
// `dir` gets a model folder and a JSONL file that ValidateJobInputs accepts; INTERNAL when they
// cannot be written.
inline absl::StatusOr<v1::JobSpec> MakeBenchSpec(const testing::TempDir& dir) {
  std::string train;
  try {
    dir.Write("model/config.json", R"({"model_type":"llama"})");
    dir.Write("model/model.safetensors", "{}");
    train = dir.Write("train.jsonl", "{\"text\":\"hi\"}\n");
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
