#include "worker/trainer/sentencepiece_tokenizer.h"

#include <sentencepiece_processor.h>

#include "worker/trainer/trainer_error.h"

namespace tuneledger::train {

std::unique_ptr<SentencePieceTokenizer> SentencePieceTokenizer::FromFile(const std::string& path) {
  auto processor = std::make_unique<sentencepiece::SentencePieceProcessor>();
  const auto status = processor->Load(path);
  if (!status.ok()) {
    throw TrainError(path + ": cannot load the SentencePiece model: " + status.ToString());
  }
  return std::unique_ptr<SentencePieceTokenizer>(new SentencePieceTokenizer(std::move(processor)));
}

SentencePieceTokenizer::SentencePieceTokenizer(
    std::unique_ptr<sentencepiece::SentencePieceProcessor> processor)
    : processor_(std::move(processor)) {}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

std::vector<int64_t> SentencePieceTokenizer::Encode(const std::string& text) const {
  std::vector<int> ids;
  const auto status = processor_->Encode(text, &ids);
  if (!status.ok()) throw TrainError("SentencePiece encode failed: " + status.ToString());
  return std::vector<int64_t>(ids.begin(), ids.end());
}

std::string SentencePieceTokenizer::Decode(const std::vector<int64_t>& ids) const {
  std::vector<int> pieces;
  pieces.reserve(ids.size());
  for (int64_t id : ids) {
    // Out-of-range ids (a model can emit any id below its own vocab_size, which may exceed the
    // tokenizer's) decode to nothing rather than failing the whole sample.
    if (id < 0 || id >= vocab_size()) continue;
    pieces.push_back(static_cast<int>(id));
  }
  std::string text;
  const auto status = processor_->Decode(pieces, &text);
  if (!status.ok()) throw TrainError("SentencePiece decode failed: " + status.ToString());
  return text;
}

int64_t SentencePieceTokenizer::vocab_size() const { return processor_->GetPieceSize(); }
int64_t SentencePieceTokenizer::bos_id() const { return processor_->bos_id(); }
int64_t SentencePieceTokenizer::eos_id() const { return processor_->eos_id(); }

int64_t SentencePieceTokenizer::pad_id() const {
  if (processor_->pad_id() >= 0) return processor_->pad_id();
  if (processor_->eos_id() >= 0) return processor_->eos_id();
  return 0;
}

}  // namespace tuneledger::train
