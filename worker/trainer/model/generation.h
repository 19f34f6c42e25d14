// Greedy decoding: the trainer's before/after samples and tuneledger-generate's evaluation of
// a held-out set.
//
// Shape legend: T tokens, V vocab.
//
// No KV cache: each step re-runs the whole sequence (prompt + generated so far) and scores the
// last position only, which is plenty for completions of tens of tokens.
#ifndef TUNELEDGER_WORKER_TRAINER_MODEL_GENERATION_H_
#define TUNELEDGER_WORKER_TRAINER_MODEL_GENERATION_H_

#include <cstdint>
#include <vector>

#include "worker/trainer/model/llama_model.h"

namespace tuneledger::train {

// Appends argmax tokens to `prompt` (non-empty) until `max_new_tokens` are generated or
// `eos_id` comes (pass -1 for none), without grad and in eval mode (the model's training mode
// is restored afterwards). Returns only the new tokens, without the eos token.
std::vector<int64_t> GreedyGenerate(LlamaForCausalLM& model, const std::vector<int64_t>& prompt,
                                    int max_new_tokens, int64_t eos_id);

}  // namespace tuneledger::train

#endif  // TUNELEDGER_WORKER_TRAINER_MODEL_GENERATION_H_
