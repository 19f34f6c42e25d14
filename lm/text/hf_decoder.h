// The "decoder" of a Hugging Face tokenizer.json: ByteLevel, Metaspace, ByteFallback, Fuse,
// Strip, Replace, BPEDecoder and Sequence, each the tokenizers library's decode_chain (tokens
// in, tokens out; the caller joins the result). Other types (WordPiece, CTC, ...) are a
// TrainError naming the JSON path.
//
// Thread safety: immutable after parsing.
#ifndef TUNELEDGER_LM_TEXT_HF_DECODER_H_
#define TUNELEDGER_LM_TEXT_HF_DECODER_H_

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace tuneledger::train {

class HfDecoder {
 public:
  virtual ~HfDecoder() = default;
  virtual void DecodeChain(std::vector<std::string>* tokens) const = 0;
};

// nullptr for a JSON null. `where` is the JSON path, e.g. "<file>: decoder".
std::unique_ptr<HfDecoder> ParseHfDecoder(const nlohmann::json& decoder, const std::string& where);

}  // namespace tuneledger::train

#endif  // TUNELEDGER_LM_TEXT_HF_DECODER_H_
