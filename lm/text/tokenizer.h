// Text <-> token ids: the interface the recipe sees. Implementations: HfTokenizer
// (hf_tokenizer.h, Hugging Face tokenizer.json), ByteTokenizer (lm/data/byte_tokenizer.h) and
// the trainer's SentencePieceTokenizer (worker/trainer/recipe/sentencepiece_tokenizer.h);
// worker/trainer/recipe/tokenizer.h's LoadTokenizer picks one for a model folder.
//
// BOS/EOS: Encode() never adds them. The data formats (lm/data/jsonl_dataset.h,
// lm/data/chat_template.h) put them around an example, so what the model sees is spelled out in
// one place: BOS when add_bos() says the model expects it, and one EOS at the end.
//
// Thread safety: implementations are immutable after construction (caches inside are guarded);
// const methods may be called from several threads.
#ifndef TUNELEDGER_LM_TEXT_TOKENIZER_H_
#define TUNELEDGER_LM_TEXT_TOKENIZER_H_

#include <cstdint>
#include <string>
#include <vector>

namespace tuneledger::train {

// The file of a SentencePiece model folder. Only the trainer reads it (through libsentencepiece);
// the server's estimate recognises it, to say it cannot count tokens with it.
inline constexpr const char kSentencePieceModelFileName[] = "tokenizer.model";

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Token ids of `text`, without BOS/EOS.
  virtual std::vector<int64_t> Encode(const std::string& text) const = 0;
  // Text of `ids`; special tokens (BOS/EOS/PAD) and ids outside the vocabulary are dropped.
  virtual std::string Decode(const std::vector<int64_t>& ids) const = 0;

  virtual int64_t vocab_size() const = 0;
  // -1 when the tokenizer has no such token (e.g. Qwen2 has no BOS).
  virtual int64_t bos_id() const = 0;
  virtual int64_t eos_id() const = 0;
  // The id used to right-pad batches (its labels are -100, so its value never trains).
  virtual int64_t pad_id() const = 0;
  // Whether the tokenizer's own encode-with-special-tokens starts a sequence with BOS / ends it
  // with EOS (Hugging Face: tokenizer_config.json's add_bos_token / add_eos_token, else the
  // post-processor's template). SentencePiece and byte models follow Llama 2: BOS, no EOS.
  virtual bool add_bos() const { return true; }
  virtual bool add_eos() const { return false; }
};

}  // namespace tuneledger::train

#endif  // TUNELEDGER_LM_TEXT_TOKENIZER_H_
