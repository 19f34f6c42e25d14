// HfTokenizer: a Hugging Face tokenizer.json (the tokenizers library's format, what Llama 3.x,
// Qwen2/2.5, SmolLM2, Mistral and Phi-3 ship) read and run in C++, equal id for id to the
// library (tests/trainer/text_hf_tokenizer_parity_test.cc holds it to that).
//
// Encode runs the library's pipeline: added tokens are cut out first (hf_added_tokens.h), each
// piece between them is normalized (hf_normalizer.h), split by the pre-tokenizer
// (hf_pre_tokenizer.h) and each pre-token is turned into ids by the BPE model
// (hf_bpe_model.h). Decode maps ids to token strings (special tokens skipped) and runs the
// decoder (hf_decoder.h). Supported: model BPE only; anything else the file asks for that is not
// implemented is a TrainError naming the file and the JSON path, never a silent fallback.
// The "truncation" and "padding" sections are ignored on purpose: they batch for inference
// (transformers resets them per call too); the data formats cut examples to seq_len themselves.
//
// Special tokens: tokenizer_config.json beside tokenizer.json (optional) names bos_token,
// eos_token, pad_token (a string or {"content": ...}) and may set add_bos_token/add_eos_token;
// otherwise post_processor TemplateProcessing ("<bos> $A <eos>") says which tokens wrap a
// sequence (ByteLevel post-processors and Sequences of these are accepted; other processors are
// refused). pad_id falls back to eos_id, then 0; bos_id/eos_id are -1 when nothing names them.
//
// Thread safety: immutable after construction but for the BPE word cache, which is guarded;
// Encode/Decode may be called from several threads.
#ifndef TUNELEDGER_LM_TEXT_HF_TOKENIZER_H_
#define TUNELEDGER_LM_TEXT_HF_TOKENIZER_H_

#include <memory>
#include <string>
#include <vector>

#include "lm/text/hf_added_tokens.h"
#include "lm/text/hf_bpe_model.h"
#include "lm/text/hf_decoder.h"
#include "lm/text/hf_normalizer.h"
#include "lm/text/hf_pre_tokenizer.h"
#include "lm/text/tokenizer.h"

namespace tuneledger::train {

class HfTokenizer : public Tokenizer {
 public:
  static constexpr const char* kFileName = "tokenizer.json";
  static constexpr const char* kConfigFileName = "tokenizer_config.json";

  // Reads <model_dir>/tokenizer.json and, when present, <model_dir>/tokenizer_config.json.
  static std::unique_ptr<HfTokenizer> FromModelDir(const std::string& model_dir);
  // `config_path` may be empty (no tokenizer_config.json).
  static std::unique_ptr<HfTokenizer> FromFiles(const std::string& tokenizer_path,
                                                const std::string& config_path);

  std::vector<int64_t> Encode(const std::string& text) const override;
  std::string Decode(const std::vector<int64_t>& ids) const override;
  int64_t vocab_size() const override { return vocab_size_; }
  int64_t bos_id() const override { return bos_id_; }
  int64_t eos_id() const override { return eos_id_; }
  int64_t pad_id() const override { return pad_id_; }
  bool add_bos() const override { return add_bos_; }
  bool add_eos() const override { return add_eos_; }

 private:
  HfTokenizer() = default;
  void ReadSpecialTokens(const nlohmann::json& tokenizer, const std::string& tokenizer_path,
                         const std::string& config_path);
  void EncodeText(std::string_view text, bool at_start, std::vector<int64_t>* ids) const;

  std::unique_ptr<HfNormalizer> normalizer_;
  std::unique_ptr<HfPreTokenizer> pre_tokenizer_;
  std::unique_ptr<HfBpeModel> model_;
  std::unique_ptr<HfDecoder> decoder_;
  std::unique_ptr<HfAddedTokens> added_tokens_;
  int64_t vocab_size_ = 0;
  int64_t bos_id_ = -1;
  int64_t eos_id_ = -1;
  int64_t pad_id_ = 0;
  bool add_bos_ = false;
  bool add_eos_ = false;
};

}  // namespace tuneledger::train

#endif  // TUNELEDGER_LM_TEXT_HF_TOKENIZER_H_
