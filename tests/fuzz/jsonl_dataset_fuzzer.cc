// Fuzz target: the JSONL data reader (lm/data/jsonl_dataset.h) on a whole data
// file, tokenized with the byte tokenizer, read twice: with the defaults the trainer uses for a
// small model, and with a short seq_len and a model vocabulary smaller than the tokenizer's (the
// truncation and out-of-vocabulary paths). Only a TrainError may come out, and every example it
// returns must be what the batcher can index: ids inside the vocabulary, labels the same length
// (an id or -100), at most seq_len tokens, at least one target. Seeds: tests/fuzz/jsonl_dataset/.
#include <cstddef>
#include <cstdint>

#include "lm/data/byte_tokenizer.h"
#include "lm/data/jsonl_dataset.h"
#include "lm/trainer_error.h"
#include "tests/fuzz/fuzz_check.h"
#include "tests/fuzz/fuzz_scratch_file.h"

namespace tuneledger::train {
namespace {

void LoadAndCheck(const std::string& path, const Tokenizer& tokenizer,
                  const DatasetOptions& options) {
  TokenizedDataset dataset;
  try {
    dataset = LoadJsonlDataset(path, tokenizer, options);
  } catch (const TrainError&) {
    return;
  }
  const int64_t vocab_size = options.vocab_size > 0 ? options.vocab_size : tokenizer.vocab_size();
  FUZZ_CHECK(!dataset.examples.empty());
  for (const TokenizedExample& example : dataset.examples) {
    FUZZ_CHECK(example.input_ids.size() == example.labels.size());
    FUZZ_CHECK(!example.input_ids.empty());
    FUZZ_CHECK(example.input_ids.size() <= static_cast<size_t>(options.seq_len));
    bool has_target = false;
    for (size_t t = 0; t < example.input_ids.size(); ++t) {
      FUZZ_CHECK(example.input_ids[t] >= 0 && example.input_ids[t] < vocab_size);
      const int64_t label = example.labels[t];
      FUZZ_CHECK(label == kIgnoreLabel || (label >= 0 && label < vocab_size));
      has_target = has_target || (t > 0 && label != kIgnoreLabel);
    }
    FUZZ_CHECK(has_target);
  }
}

}  // namespace
}  // namespace tuneledger::train

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tuneledger::train;
  static const tuneledger::fuzz::FuzzScratchFile file("data.jsonl");
  static const ByteTokenizer tokenizer;
  const std::string& path = file.Write(data, size);
  LoadAndCheck(path, tokenizer, DatasetOptions{/*seq_len=*/256, /*vocab_size=*/0});
  LoadAndCheck(path, tokenizer, DatasetOptions{/*seq_len=*/12, /*vocab_size=*/200});
  return 0;
}
