// Text <-> token ids. The recipe sees only this interface; the model folder says which
// implementation it gets (LoadTokenizer):
//   <model>/tokenizer.model       -> SentencePieceTokenizer (libsentencepiece)
//   <model>/byte_tokenizer.json   -> ByteTokenizer (the bundled model; format in byte_tokenizer.h)
// If both exist, tokenizer.model wins; if neither, LoadTokenizer throws TrainError naming both.
//
// BOS/EOS: Encode() never adds them. The data formats (jsonl_dataset.h, chat_template.h) add
// exactly one BOS at the start of an example and one EOS at its end, so what the model sees
// is spelled out in one place, not hidden inside each tokenizer.
//
// Thread safety: implementations are immutable after construction; const methods may be called
// from several threads.
#ifndef TUNELEDGER_WORKER_TRAINER_TOKENIZER_H_
#define TUNELEDGER_WORKER_TRAINER_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace tuneledger::train {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Token ids of `text`, without BOS/EOS.
  virtual std::vector<int64_t> Encode(const std::string& text) const = 0;
  // Text of `ids`; special tokens (BOS/EOS/PAD) are dropped.
  virtual std::string Decode(const std::vector<int64_t>& ids) const = 0;

  virtual int64_t vocab_size() const = 0;
  virtual int64_t bos_id() const = 0;
  virtual int64_t eos_id() const = 0;
  // The id used to right-pad batches (its labels are -100, so its value never trains).
  virtual int64_t pad_id() const = 0;
};

// Picks the tokenizer of a Hugging Face style model folder (see above).
std::unique_ptr<Tokenizer> LoadTokenizer(const std::string& model_dir);

}  // namespace tuneledger::train

#endif  // TUNELEDGER_WORKER_TRAINER_TOKENIZER_H_
