#include "worker/trainer/tokenizer.h"

#include <filesystem>

#include "worker/trainer/byte_tokenizer.h"
#include "worker/trainer/sentencepiece_tokenizer.h"
#include "worker/trainer/trainer_error.h"

namespace tuneledger::train {

std::unique_ptr<Tokenizer> LoadTokenizer(const std::string& model_dir) {
  namespace fs = std::filesystem;
  const fs::path dir(model_dir);
  if (fs::exists(dir / SentencePieceTokenizer::kModelFileName)) {
    return SentencePieceTokenizer::FromFile(
        (dir / SentencePieceTokenizer::kModelFileName).string());
  }
  if (fs::exists(dir / ByteTokenizer::kConfigFileName)) {
    return ByteTokenizer::FromModelDir(model_dir);
  }
  throw TrainError(model_dir + ": no tokenizer: expected " +
                   SentencePieceTokenizer::kModelFileName + " (SentencePiece) or " +
                   ByteTokenizer::kConfigFileName + " (byte-level)");
}

}  // namespace tuneledger::train
