// JSONL training / validation data -> token ids with per-token loss labels.
//
// Shape legend: T tokens of one example (T <= seq_len).
//
// One JSON object per line; blank lines are skipped. Each line is one of:
//   {"text": "..."}                          [BOS] text EOS, every token trains
//   {"prompt": "...", "completion": "..."}   [BOS] prompt completion EOS; only completion and
//                                            EOS train (prompt labels are -100)
//   {"messages": [{"role","content"}, ...]}  the model's own chat template when the options
//                                            carry one (see below), else the built-in template
//                                            of chat_template.h
//   {"input_ids": [...], "labels": [...]}    pre-tokenized, used as given (no BOS/EOS added);
//                                            labels optional (= input_ids), -100 = no loss
// [BOS]: only when the tokenizer's add_bos() says the model expects it (Llama yes, Qwen2 no).
// EOS ends every example whatever add_eos() says, so that a fine-tune learns to stop; a
// tokenizer with no EOS token (eos_id() < 0) adds none.
// With the model's chat template (lm/text/hf_chat_template.h) a conversation is tokenized the way
// transformers' apply_chat_template(messages, tokenize=True) tokenizes it: the rendered text
// encoded as one string, so the bos_token the template writes becomes the BOS id (no second BOS
// is added; one is prepended only when the tokenizer adds BOS and the text does not start with
// it). Labels: the tokens of each assistant turn (HfChatTemplate::SplitTurns: the content and
// its end-of-turn token, e.g. "<|im_end|>"), all else -100; a token that straddles the start of
// a turn trains, one that straddles its end does not. EOS is appended (and trains) only when
// the conversation ends with an assistant turn holding no EOS token, so that the model learns
// to stop. Roles are free with a model template (it decides, e.g. by raise_exception); message
// keys other than role reach the template as they are, in the file's order (as json.loads).
// Other keys on a line (an "id", a "source") are ignored; mixing two formats on one line is an
// error. Labels follow the Hugging Face convention: labels[t] is the token at position t, and
// the loss (causal_lm_loss.h) predicts labels[t+1] from position t.
//
// Examples longer than seq_len keep their first seq_len tokens. An example left with no token
// to train on (e.g. a prompt longer than seq_len) is dropped and counted. A malformed line is a
// TrainError "<path>:<line>: <what is wrong>".
//
// Thread safety: pure functions over their arguments.
#ifndef TUNELEDGER_LM_DATA_JSONL_DATASET_H_
#define TUNELEDGER_LM_DATA_JSONL_DATASET_H_

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "lm/text/hf_chat_template.h"
#include "lm/text/tokenizer.h"

namespace tuneledger::train {

inline constexpr int64_t kIgnoreLabel = -100;

struct TokenizedExample {
  std::vector<int64_t> input_ids;  // [T]
  std::vector<int64_t> labels;     // [T], kIgnoreLabel where no loss
};

struct DatasetOptions {
  int seq_len = 256;
  // Token ids must be below this (the model's vocab_size); 0 = the tokenizer's vocab_size.
  int64_t vocab_size = 0;
  // The model's chat template for "messages" lines; null: the built-in one (chat_template.h).
  const HfChatTemplate* chat_template = nullptr;
  // Set when the model has a chat template that could not be loaded (e.g. an unsupported Jinja
  // construct): "messages" lines fail with this message instead of using the built-in template.
  std::string chat_template_error{};
};

struct TokenizedDataset {
  std::vector<TokenizedExample> examples;
  // source_lines[i]: the 1-based line of the file examples[i] came from (blank lines and
  // dropped examples make the two differ); filled by LoadJsonlDataset.
  std::vector<int64_t> source_lines;
  int64_t lines = 0;               // non-blank lines read
  int64_t truncated = 0;           // examples cut to seq_len
  int64_t dropped_no_targets = 0;  // examples left with nothing to train on
  int64_t total_tokens() const;
};

// One record (a parsed line) -> a truncated example. Throws TrainError describing the problem
// (without a location; LoadJsonlDataset adds "<path>:<line>: "). Sets *truncated (if given) to
// whether the example was cut to seq_len.
TokenizedExample TokenizeRecord(const nlohmann::ordered_json& record, const Tokenizer& tokenizer,
                                const DatasetOptions& options, bool* truncated = nullptr);

// The ids a {"prompt", ...} example starts with: BOS (when the tokenizer adds one) and the
// prompt's tokens. What a model is given to generate a completion (tuneledger-generate, the
// trainer's samples), the same as training saw.
std::vector<int64_t> PromptIds(const Tokenizer& tokenizer, const std::string& prompt);

// Reads a whole JSONL file. Throws TrainError "<path>:<line>: ..." for a bad line, and
// "<path>: ..." when the file cannot be read or holds no trainable example.
TokenizedDataset LoadJsonlDataset(const std::string& path, const Tokenizer& tokenizer,
                                  const DatasetOptions& options);

}  // namespace tuneledger::train

#endif  // TUNELEDGER_LM_DATA_JSONL_DATASET_H_
