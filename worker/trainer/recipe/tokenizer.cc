#include "worker/trainer/recipe/tokenizer.h"

#include <filesystem>

#include "lm/data/byte_tokenizer.h"
#include "lm/text/hf_tokenizer.h"
#include "lm/trainer_error.h"
#include "worker/trainer/recipe/sentencepiece_tokenizer.h"

namespace tuneledger::train {

std::unique_ptr<Tokenizer> LoadTokenizer(const std::string& model_dir) {
  namespace fs = std::filesystem;
  const fs::path dir(model_dir);
  if (fs::exists(dir / HfTokenizer::kFileName)) return HfTokenizer::FromModelDir(model_dir);
  if (fs::exists(dir / SentencePieceTokenizer::kModelFileName)) {
    return SentencePieceTokenizer::FromFile(
        (dir / SentencePieceTokenizer::kModelFileName).string());
  }
  if (fs::exists(dir / ByteTokenizer::kConfigFileName)) {
    return ByteTokenizer::FromModelDir(model_dir);
  }
  throw TrainError(model_dir + ": no tokenizer: expected " + HfTokenizer::kFileName +
                   " (Hugging Face), " + SentencePieceTokenizer::kModelFileName +
                   " (SentencePiece) or " + ByteTokenizer::kConfigFileName + " (byte-level)");
}

}  // namespace tuneledger::train
