// JSONL training / validation data -> token ids with per-token loss labels.
//
// Shape legend: T tokens of one example (T <= seq_len).
//
// One JSON object per line; blank lines are skipped. Each line is one of:
//   {"text": "..."}                          <BOS> text <EOS>, every token trains
//   {"prompt": "...", "completion": "..."}   <BOS> prompt completion <EOS>; only completion and
//                                            EOS train (prompt labels are -100)
//   {"messages": [{"role","content"}, ...]}  the chat template of chat_template.h
//   {"input_ids": [...], "labels": [...]}    pre-tokenized, used as given (no BOS/EOS added);
//                                            labels optional (= input_ids), -100 = no loss
// Other keys on a line (an "id", a "source") are ignored; mixing two formats on one line is an
// error. Labels follow the Hugging Face convention: labels[t] is the token at position t, and
// the loss (causal_lm_loss.h) predicts labels[t+1] from position t.
//
// Examples longer than seq_len keep their first seq_len tokens. An example left with no token
// to train on (e.g. a prompt longer than seq_len) is dropped and counted. A malformed line is a
// TrainError "<path>:<line>: <what is wrong>".
//
// Thread safety: pure functions over their arguments.
#ifndef TUNELEDGER_WORKER_TRAINER_JSONL_DATASET_H_
#define TUNELEDGER_WORKER_TRAINER_JSONL_DATASET_H_

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "worker/trainer/tokenizer.h"

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
};

struct TokenizedDataset {
  std::vector<TokenizedExample> examples;
  int64_t lines = 0;               // non-blank lines read
  int64_t truncated = 0;           // examples cut to seq_len
  int64_t dropped_no_targets = 0;  // examples left with nothing to train on
  int64_t total_tokens() const;
};

// One record (a parsed line) -> a truncated example. Throws TrainError describing the problem
// (without a location; LoadJsonlDataset adds "<path>:<line>: "). Sets *truncated (if given) to
// whether the example was cut to seq_len.
TokenizedExample TokenizeRecord(const nlohmann::json& record, const Tokenizer& tokenizer,
                                const DatasetOptions& options, bool* truncated = nullptr);

// Reads a whole JSONL file. Throws TrainError "<path>:<line>: ..." for a bad line, and
// "<path>: ..." when the file cannot be read or holds no trainable example.
TokenizedDataset LoadJsonlDataset(const std::string& path, const Tokenizer& tokenizer,
                                  const DatasetOptions& options);

}  // namespace tuneledger::train

#endif  // TUNELEDGER_WORKER_TRAINER_JSONL_DATASET_H_
