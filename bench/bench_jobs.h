// The jobs and workers the server benchmarks submit: a spec that passes validation (with its
// model folder and data file made in the benchmark's temp dir, so the submit-time input check
// runs for real) and a CPU worker.
// Thread safety: pure functions.
#ifndef TUNELEDGER_BENCH_BENCH_JOBS_H_
#define TUNELEDGER_BENCH_BENCH_JOBS_H_

#include <string>

#include "absl/status/statusor.h"
#include "bench/bench_temp_dir.h"
#include "server/base/status_macros.h"
#include "tuneledger/v1/jobs.pb.h"
#include "tuneledger/v1/worker.pb.h"

namespace tuneledger::bench {

// A spec as `tunectl submit` sends it for a small LoRA job (defaults left to the server).
// `dir` gets a model folder and a JSONL file that ValidateJobInputs accepts.
inline absl::StatusOr<v1::JobSpec> MakeBenchSpec(const BenchTempDir& dir) {
  TL_RETURN_IF_ERROR(dir.Write("model/config.json", R"({"model_type":"llama"})").status());
  TL_RETURN_IF_ERROR(dir.Write("model/model.safetensors", "{}").status());
  TL_ASSIGN_OR_RETURN(const std::string train, dir.Write("train.jsonl", "{\"text\":\"hi\"}\n"));
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
