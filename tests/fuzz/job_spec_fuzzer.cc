// Fuzz target: the trainer's job spec parser (worker/trainer/spec/job_spec.h) on a whole spec
// file, through LoadJobSpec as tuneledger-train reads it. Only a TrainError may come out, and a
// spec it accepts must have its defaults applied (exactly one of epochs / max_steps, a positive
// batch, sequence length and learning rate, LoRA rank and target modules).
// Seeds: tests/fuzz/job_spec/ (the proto JSON mapping, both field spellings).
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "lm/trainer_error.h"
#include "tests/fuzz/fuzz_check.h"
#include "tests/fuzz/fuzz_scratch_file.h"
#include "worker/trainer/spec/job_spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tuneledger::train;
  static const tuneledger::fuzz::FuzzScratchFile file("spec.json");
  TrainJobSpec spec;
  try {
    spec = LoadJobSpec(file.Write(data, size));
  } catch (const TrainError&) {
    return 0;  // refused with a message
  }
  FUZZ_CHECK((spec.epochs > 0) != (spec.max_steps > 0));
  FUZZ_CHECK(spec.batch_size > 0 && spec.grad_accum_steps > 0 && spec.seq_len > 0);
  FUZZ_CHECK(std::isfinite(spec.learning_rate) && spec.learning_rate > 0);
  FUZZ_CHECK(spec.lora_r > 0 && !spec.target_modules.empty());
  FUZZ_CHECK(spec.lora_dropout >= 0 && spec.lora_dropout < 1);
  return 0;
}
