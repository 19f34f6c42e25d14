// The LoRA adapter in Hugging Face PEFT's format, so `PeftModel.from_pretrained` loads it.
//
//   <dir>/adapter_model.safetensors  fp32 tensors keyed by PeftKey(model name), e.g.
//       base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight   [r,in]
//       base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight   [out,r]
//   <dir>/adapter_config.json        peft_type "LORA", task_type "CAUSAL_LM", r, lora_alpha,
//       lora_dropout, target_modules, base_model_name_or_path, bias "none",
//       fan_in_fan_out false, inference_mode true, ...
//
// Model names already are Hugging Face's (llama_model.h), so the whole mapping is the one
// table in peft_adapter.cc: add the "base_model.model." prefix; on reading, also accept PEFT's
// in-memory ".default" adapter segment.
#ifndef TUNELEDGER_WORKER_TRAINER_MODEL_PEFT_ADAPTER_H_
#define TUNELEDGER_WORKER_TRAINER_MODEL_PEFT_ADAPTER_H_

#include <torch/types.h>

#include <string>
#include <utility>
#include <vector>

#include "worker/trainer/model/llama_model.h"
#include "worker/trainer/model/lora_linear.h"

namespace tuneledger::train {

// "model.layers.0.self_attn.q_proj.lora_A.weight" ->
// "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight".
std::string PeftKeyFromModelName(const std::string& model_name);
// The inverse (also strips ".default" before ".weight"); TrainError naming the key when it is
// not a PEFT LoRA key.
std::string ModelNameFromPeftKey(const std::string& peft_key);

struct PeftAdapter {
  LoraOptions lora;
  std::string base_model_name_or_path;
  // Model names (no prefix) -> fp32 CPU tensors, sorted by name.
  std::vector<std::pair<std::string, torch::Tensor>> weights;
};

// Writes adapter_model.safetensors + adapter_config.json into `out_dir` (created), each file
// atomically. Throws TrainError when the model has no LoRA.
void WritePeftAdapter(LlamaForCausalLM& model, const LoraOptions& lora,
                      const std::string& base_model_name_or_path, const std::string& out_dir);

// Reads and validates an adapter folder. Throws TrainError naming the file and field/tensor.
PeftAdapter ReadPeftAdapter(const std::string& dir);

// Copies `weights` (model names) into the model's LoRA parameters. Every LoRA parameter must
// be given once with its exact shape, and nothing else: TrainError naming the tensor.
void LoadLoraWeights(LlamaForCausalLM& model,
                     const std::vector<std::pair<std::string, torch::Tensor>>& weights);

// Starts the model's LoRA from the adapter in `dir` (written by PEFT or by tuneledger): its r,
// lora_alpha and target_modules must equal `lora`'s (dropout may differ: it only acts in
// training). TrainError naming the adapter's file and the differing field otherwise.
void InitLoraFromAdapter(LlamaForCausalLM& model, const LoraOptions& lora, const std::string& dir);

}  // namespace tuneledger::train

#endif  // TUNELEDGER_WORKER_TRAINER_MODEL_PEFT_ADAPTER_H_
