// LoadTokenizer: the tokenizer of a Hugging Face style model folder. The recipe sees only the
// Tokenizer interface (lm/text/tokenizer.h); the folder says which implementation it gets, first
// match wins:
//   1. <model>/tokenizer.json        -> HfTokenizer (lm/text/hf_tokenizer.h; Llama 3, Qwen2,
//   Mistral,
//                                       ...), with <model>/tokenizer_config.json when present
//   2. <model>/tokenizer.model       -> SentencePieceTokenizer (libsentencepiece)
//   3. <model>/byte_tokenizer.json   -> ByteTokenizer (the bundled model; format in
//                                       byte_tokenizer.h)
// tokenizer.json comes first because a folder that ships both is a fast-tokenizer folder whose
// tokenizer.json is what transformers loads; if none exists, LoadTokenizer throws TrainError
// naming all three.
//
// Thread safety: LoadTokenizer is reentrant; the tokenizers it returns are immutable.
#ifndef TUNELEDGER_WORKER_TRAINER_RECIPE_TOKENIZER_H_
#define TUNELEDGER_WORKER_TRAINER_RECIPE_TOKENIZER_H_

#include <memory>
#include <string>

#include "lm/text/tokenizer.h"

namespace tuneledger::train {

// Picks the tokenizer of a Hugging Face style model folder (see above).
std::unique_ptr<Tokenizer> LoadTokenizer(const std::string& model_dir);

}  // namespace tuneledger::train

#endif  // TUNELEDGER_WORKER_TRAINER_RECIPE_TOKENIZER_H_
