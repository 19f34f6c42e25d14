// Fuzz target: the server's job spec validator (server/core/job_spec_validator.h) on the two
// ways a spec arrives: the input is parsed as a serialized tuneledger.v1.JobSpec (what gRPC
// delivers) and, separately, as the proto JSON mapping (what `tunectl submit --spec` reads,
// client/spec_builder.cc). For every spec that parses:
//   - ValidateJobSpec returns OK or INVALID_ARGUMENT with a message, nothing else;
//   - an accepted spec with WithDefaults applied is still accepted, and applying them twice
//     changes nothing (what the store keeps is what runs);
//   - the trainer accepts what the server accepted: the spec printed as the worker prints it
//     for the trainer (worker/agent/attempt_runner.cc) parses with the trainer's ParseJobSpec
//     (worker/trainer/spec/job_spec.h) to the same values.
// Seeds: tests/fuzz/job_spec_validator/ (JSON and binary specs, tests/fuzz/make_seeds.py).
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "lm/trainer_error.h"
#include "server/core/job_spec_validator.h"
#include "tests/fuzz/fuzz_check.h"
#include "tuneledger/v1/jobs.pb.h"
#include "worker/trainer/spec/job_spec.h"

namespace tuneledger {
namespace {

// The spec as the worker writes spec.json for the trainer (worker/agent/attempt_runner.cc).
std::string WorkerSpecJson(const v1::JobSpec& spec) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.add_whitespace = true;
  std::string json;
  FUZZ_CHECK(google::protobuf::util::MessageToJsonString(spec, &json, options).ok());
  return json;
}

void CheckTrainerAccepts(const v1::JobSpec& spec) {
  const nlohmann::json object = nlohmann::json::parse(WorkerSpecJson(spec), /*cb=*/nullptr,
                                                      /*allow_exceptions=*/false);
  FUZZ_CHECK(object.is_object());
  train::TrainJobSpec parsed;
  try {
    parsed = train::ParseJobSpec(object);
  } catch (const train::TrainError& error) {
    std::fprintf(stderr, "the server accepted a spec the trainer refuses: %s\n", error.what());
    FUZZ_CHECK(false);
  }
  const v1::LoraConfig& lora = spec.lora();
  const v1::TrainingConfig& training = spec.training();
  FUZZ_CHECK(parsed.model_path == spec.model_path());
  FUZZ_CHECK(parsed.train_path == spec.train_path());
  FUZZ_CHECK(parsed.lora_r == lora.r());
  FUZZ_CHECK(parsed.lora_alpha == lora.alpha());
  FUZZ_CHECK(parsed.lora_dropout == lora.dropout());
  FUZZ_CHECK(parsed.target_modules ==
             std::vector<std::string>(lora.target_modules().begin(), lora.target_modules().end()));
  FUZZ_CHECK(parsed.epochs == training.epochs());
  FUZZ_CHECK(parsed.max_steps == training.max_steps());
  FUZZ_CHECK(parsed.batch_size == training.batch_size());
  FUZZ_CHECK(parsed.grad_accum_steps == training.grad_accum_steps());
  FUZZ_CHECK(parsed.learning_rate == training.learning_rate());
  FUZZ_CHECK(parsed.seq_len == training.seq_len());
  FUZZ_CHECK(parsed.seed == training.seed());
  FUZZ_CHECK(parsed.weight_decay == training.weight_decay());
  FUZZ_CHECK(parsed.max_grad_norm == training.max_grad_norm());
}

void Check(const v1::JobSpec& spec) {
  const absl::Status status = ValidateJobSpec(spec);
  if (!status.ok()) {
    FUZZ_CHECK(status.code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(!status.message().empty());
    return;
  }
  const v1::JobSpec defaulted = WithDefaults(spec);
  FUZZ_CHECK(ValidateJobSpec(defaulted).ok());
  FUZZ_CHECK(
      google::protobuf::util::MessageDifferencer::Equals(WithDefaults(defaulted), defaulted));
  CheckTrainerAccepts(defaulted);
}

}  // namespace
}  // namespace tuneledger

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using tuneledger::v1::JobSpec;
  JobSpec binary;
  if (binary.ParseFromArray(data, static_cast<int>(size))) tuneledger::Check(binary);
  JobSpec json;
  const google::protobuf::StringPiece text(reinterpret_cast<const char*>(data), size);
  if (google::protobuf::util::JsonStringToMessage(text, &json).ok()) tuneledger::Check(json);
  return 0;
}
