// SentencePiece tokenizer (Llama / Mistral style tokenizer.model), through libsentencepiece.
// BOS/EOS/PAD ids come from the model proto; a model without a pad piece pads with EOS (pads
// carry label -100, so the value never trains) or, lacking that too, with id 0.
//
// libsentencepiece is reached only through a shim loaded with dlopen (sentencepiece_shim.h
// explains the protobuf clash that makes this necessary). The shim is looked up at
//   $TUNELEDGER_SENTENCEPIECE_SHIM, else <executable dir>/../lib/libtuneledger_sentencepiece.so,
//   else <executable dir>/libtuneledger_sentencepiece.so, else the path it was built at.
//
// Thread safety: SentencePieceProcessor's const methods are thread-safe; so are these. The shim
// is loaded once (thread-safe static initialisation).
#ifndef TUNELEDGER_WORKER_TRAINER_RECIPE_SENTENCEPIECE_TOKENIZER_H_
#define TUNELEDGER_WORKER_TRAINER_RECIPE_SENTENCEPIECE_TOKENIZER_H_

#include <memory>
#include <string>
#include <vector>

#include "lm/text/tokenizer.h"

namespace tuneledger::train {

class SentencePieceTokenizer : public Tokenizer {
 public:
  static constexpr const char* kModelFileName = kSentencePieceModelFileName;

  // Loads a serialized SentencePiece model (e.g. <model_dir>/tokenizer.model); TrainError with
  // the path and libsentencepiece's message on failure.
  static std::unique_ptr<SentencePieceTokenizer> FromFile(const std::string& path);

  ~SentencePieceTokenizer() override;
  SentencePieceTokenizer(const SentencePieceTokenizer&) = delete;
  SentencePieceTokenizer& operator=(const SentencePieceTokenizer&) = delete;

  std::vector<int64_t> Encode(const std::string& text) const override;
  std::string Decode(const std::vector<int64_t>& ids) const override;
  int64_t vocab_size() const override { return vocab_size_; }
  int64_t bos_id() const override { return bos_id_; }
  int64_t eos_id() const override { return eos_id_; }
  int64_t pad_id() const override { return pad_id_; }

 private:
  explicit SentencePieceTokenizer(void* processor);

  void* processor_;  // owned; a sentencepiece::SentencePieceProcessor inside the shim
  int64_t vocab_size_;
  int64_t bos_id_;
  int64_t eos_id_;
  int64_t pad_id_;
};

}  // namespace tuneledger::train

#endif  // TUNELEDGER_WORKER_TRAINER_RECIPE_SENTENCEPIECE_TOKENIZER_H_
