// The trainer's view of a tuneledger.v1.JobSpec, parsed from its proto JSON mapping.
//
// The trainer links no protobuf, so this file is the trainer's one spec parser. It follows the
// proto3 JSON rules that MessageToJsonString / JsonStringToMessage use:
//   - both field spellings are accepted: "max_steps" and "maxSteps";
//   - integers may be JSON numbers or decimal strings ("7"); doubles may be numbers or strings;
//   - enums are their names ("BF16", "COSINE") or their numbers;
//   - null means "unset";
//   - an unknown field is an error naming its path ("training.max_stepz").
// The rules and defaults are the job spec's contract (proto/tuneledger/v1/job_spec_contract.h),
// which the server applies too: every field is checked, those the trainer does not act on
// (budget, labels, inherited costs, scheduling) included, with the server's field paths
// ("spec.training.seq_len"), so a spec the server accepts is a spec the trainer accepts.
//
// Thread safety: plain values and pure functions.
#ifndef TUNELEDGER_WORKER_TRAINER_SPEC_JOB_SPEC_H_
#define TUNELEDGER_WORKER_TRAINER_SPEC_JOB_SPEC_H_

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "worker/trainer/quant/block_quant.h"

namespace tuneledger::train {

enum class Precision { kUnspecified, kFp32, kBf16, kFp16 };
enum class LrScheduleKind { kCosine, kLinear, kConstant };
// training.data_selection.method, numbered as DataSelection.Method in jobs.proto.
enum class SelectionMethod { kNone, kEntropy, kLoss };

const char* PrecisionName(Precision precision);  // "fp32", "bf16", "fp16", "auto"

// A validated spec with every default applied (job_spec_contract.h's ApplyDefaults).
struct TrainJobSpec {
  std::string name;
  std::string model_path;
  std::string train_path;
  std::string valid_path;  // empty = no validation

  // LoRA
  int lora_r = 0;
  double lora_alpha = 0;
  double lora_dropout = 0;
  std::vector<std::string> target_modules;
  // lora.quantize_base: how the frozen projections of the decoder layers are stored.
  quant::BaseQuantization quantize_base = quant::BaseQuantization::kNone;

  // Training. Exactly one of epochs / max_steps is > 0 after defaults.
  int epochs = 0;
  int max_steps = 0;
  int batch_size = 0;
  int grad_accum_steps = 0;
  double learning_rate = 0;
  int warmup_steps = 0;
  LrScheduleKind lr_schedule = LrScheduleKind::kCosine;
  int seq_len = 0;
  int64_t seed = 0;
  Precision precision = Precision::kUnspecified;  // resolved per device by the recipe
  bool gradient_checkpointing = false;
  int checkpoint_every_steps = 0;
  int eval_every_steps = 0;
  double weight_decay = 0;
  double max_grad_norm = 0;  // 0 = no clipping
  bool save_merged_model = false;
  std::string sample_prompt;
  int sample_max_tokens = 0;

  // training.early_stop: 0 = off for each.
  int patience_evals = 0;
  double min_delta = 0;
  double divergence_factor = 0;

  // training.data_selection: kNone = train on every example.
  SelectionMethod selection_method = SelectionMethod::kNone;
  double keep_fraction = 0;  // in (0, 1] with a method
};

// Parses and validates a JobSpec JSON object. Throws TrainError "invalid job spec: <field>:
// <problem>; ..." listing every unknown field, wrong type and broken rule.
TrainJobSpec ParseJobSpec(const nlohmann::json& spec);

// Reads FILE and parses it; errors start with the file name. Relative model_path, train_path
// and valid_path are resolved against the folder of FILE.
TrainJobSpec LoadJobSpec(const std::string& path);

}  // namespace tuneledger::train

#endif  // TUNELEDGER_WORKER_TRAINER_SPEC_JOB_SPEC_H_
