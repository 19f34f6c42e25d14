// Test data for the server tests: a tiny model folder and JSONL files the input checks accept
// (written into a test's TempDir), and specs that pass validation. Header-only.
#ifndef TUNELEDGER_TESTS_SERVER_JOB_FIXTURES_H_
#define TUNELEDGER_TESTS_SERVER_JOB_FIXTURES_H_

#include <string>
#include <vector>

#include "tests/testing/temp_dir.h"
#include "tuneledger/v1/jobs.pb.h"
#include "tuneledger/v1/worker.pb.h"

namespace tuneledger::testing {

// A model folder and training data that pass ValidateJobInputs (content is never read).
struct JobInputs {
  std::string model_path;
  std::string train_path;
};

inline JobInputs MakeJobInputs(const TempDir& dir) {
  JobInputs inputs;
  dir.Write("model/config.json", R"({"model_type":"llama"})");
  dir.Write("model/model.safetensors", "{}");
  inputs.model_path = dir.File("model");
  inputs.train_path = dir.Write("train.jsonl", "{\"text\":\"hello\"}\n");
  return inputs;
}

// A spec that passes ValidateJobSpec (inputs as given; no filesystem check implied).
inline v1::JobSpec ValidSpec(const JobInputs& inputs = {"/models/tiny", "/data/train.jsonl"}) {
  v1::JobSpec spec;
  spec.set_name("test job");
  spec.set_model_path(inputs.model_path);
  spec.set_train_path(inputs.train_path);
  spec.mutable_training()->set_max_steps(100);
  return spec;
}

inline v1::WorkerInfo CpuWorker(double price_per_gpu_hour = 3.6, bool spot = false, int gpus = 1) {
  v1::WorkerInfo info;
  info.set_hostname("test-host");
  info.set_accelerator("cpu");
  info.set_gpus(gpus);
  info.set_price_per_gpu_hour(price_per_gpu_hour);
  info.set_spot(spot);
  return info;
}

// The kinds of `events`, in order, for compact expectations.
inline std::vector<v1::JobEvent::Kind> EventKinds(const std::vector<v1::JobEvent>& events) {
  std::vector<v1::JobEvent::Kind> kinds;
  for (const v1::JobEvent& event : events) kinds.push_back(event.kind());
  return kinds;
}

}  // namespace tuneledger::testing

#endif  // TUNELEDGER_TESTS_SERVER_JOB_FIXTURES_H_
