// Building a LlamaForCausalLM from a Hugging Face model folder, from scratch, and saving one.
//
//   <model_dir>/config.json                     LlamaConfig (model_config.h)
//   <model_dir>/model.safetensors               the weights, or
//   <model_dir>/model.safetensors.index.json    {"weight_map": {"<tensor>": "<shard file>"}}
//
// Stored weights may be F32, BF16 or F16; each is converted to the model's dtype for it (base
// dtype, fp32 for norms). Every model weight must be present with its exact shape and every
// stored tensor must belong to the model: a missing, unexpected or mis-shaped tensor is a
// TrainError naming it (and the file). Tolerated extras: rotary "inv_freq" buffers of old
// checkpoints, and lm_head.weight of a tied model (HF ignores it too).
#ifndef TUNELEDGER_WORKER_TRAINER_MODEL_MODEL_LOADER_H_
#define TUNELEDGER_WORKER_TRAINER_MODEL_MODEL_LOADER_H_

#include <torch/types.h>

#include <cstdint>
#include <string>

#include "lm/model_config.h"
#include "worker/trainer/model/llama_model.h"
#include "worker/trainer/model/lora_linear.h"

namespace tuneledger::train {

// Loads config and weights, adds LoRA when `lora` is not null (A from torch's default
// generator), quantizes the decoder projections when options.quantize_base says so (on the CPU,
// so only the packed weights reach the device; the CPU holds the whole base in base_dtype while
// loading), and moves the model to `device`.
LlamaForCausalLM LoadPretrained(const std::string& model_dir, const LoraOptions* lora,
                                const ModelOptions& options, torch::Device device);

// A randomly initialised model as Hugging Face initialises one (linear and embedding weights
// normal(0, initializer_range), norms ones, biases zeros), drawn from a private generator
// seeded with `seed` (torch's default generator is not touched, except by LoRA A init when
// `lora` is not null). Quantized as options.quantize_base says. On the CPU.
LlamaForCausalLM CreateRandom(const LlamaConfig& config, const ModelOptions& options, uint64_t seed,
                              const LoraOptions* lora = nullptr);

// Writes `dir`/config.json and `dir`/model.safetensors (HF format, tensors in
// `storage_dtype`, norms too) with any unmerged LoRA folded in (the model is not changed).
// Quantized projections are written dequantized (plus their LoRA delta): the merged model of a
// QLoRA run is an ordinary unquantized model, as PEFT's merge of a QLoRA adapter.
// Creates `dir`; each file is written atomically.
void SaveFullModel(LlamaForCausalLM& model, const std::string& dir, torch::Dtype storage_dtype);

}  // namespace tuneledger::train

#endif  // TUNELEDGER_WORKER_TRAINER_MODEL_MODEL_LOADER_H_
