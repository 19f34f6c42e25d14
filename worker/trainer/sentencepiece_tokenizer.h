// SentencePiece tokenizer (Llama / Mistral style tokenizer.model), through libsentencepiece.
// BOS/EOS/PAD ids come from the model proto; a model without a pad piece pads with EOS (pads
// carry label -100, so the value never trains) or, lacking that too, with id 0.
//
// Thread safety: SentencePieceProcessor's const methods are thread-safe; so are these.
#ifndef TUNELEDGER_WORKER_TRAINER_SENTENCEPIECE_TOKENIZER_H_
#define TUNELEDGER_WORKER_TRAINER_SENTENCEPIECE_TOKENIZER_H_

#include <memory>
#include <string>
#include <vector>

#include "worker/trainer/tokenizer.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace tuneledger::train {

class SentencePieceTokenizer : public Tokenizer {
 public:
  static constexpr const char* kModelFileName = "tokenizer.model";

  // Loads a serialized SentencePiece model (e.g. <model_dir>/tokenizer.model); TrainError with
  // the path and libsentencepiece's message on failure.
  static std::unique_ptr<SentencePieceTokenizer> FromFile(const std::string& path);

  ~SentencePieceTokenizer() override;

  std::vector<int64_t> Encode(const std::string& text) const override;
  std::string Decode(const std::vector<int64_t>& ids) const override;
  int64_t vocab_size() const override;
  int64_t bos_id() const override;
  int64_t eos_id() const override;
  int64_t pad_id() const override;

 private:
  explicit SentencePieceTokenizer(std::unique_ptr<sentencepiece::SentencePieceProcessor> sp);

  std::unique_ptr<sentencepiece::SentencePieceProcessor> processor_;
};

}  // namespace tuneledger::train

#endif  // TUNELEDGER_WORKER_TRAINER_SENTENCEPIECE_TOKENIZER_H_
