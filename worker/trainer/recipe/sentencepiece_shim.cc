// libtuneledger_sentencepiece.so: see sentencepiece_shim.h for why it exists.
#include "worker/trainer/recipe/sentencepiece_shim.h"

#include <sentencepiece_processor.h>

#include <memory>

extern "C" {

__attribute__((visibility("default"))) void* tuneledger_spm_load(const std::string* path,
                                                                 std::string* error) {
  auto processor = std::make_unique<sentencepiece::SentencePieceProcessor>();
  const auto status = processor->Load(*path);
  if (!status.ok()) {
    *error = status.ToString();
    return nullptr;
  }
  return processor.release();
}

__attribute__((visibility("default"))) void tuneledger_spm_free(void* processor) {
  delete static_cast<sentencepiece::SentencePieceProcessor*>(processor);
}

__attribute__((visibility("default"))) bool tuneledger_spm_encode(void* processor,
                                                                  const std::string* text,
                                                                  std::vector<int>* ids,
                                                                  std::string* error) {
  const auto status =
      static_cast<sentencepiece::SentencePieceProcessor*>(processor)->Encode(*text, ids);
  if (!status.ok()) *error = status.ToString();
  return status.ok();
}

__attribute__((visibility("default"))) bool tuneledger_spm_decode(void* processor,
                                                                  const std::vector<int>* ids,
                                                                  std::string* text,
                                                                  std::string* error) {
  const auto status =
      static_cast<sentencepiece::SentencePieceProcessor*>(processor)->Decode(*ids, text);
  if (!status.ok()) *error = status.ToString();
  return status.ok();
}

__attribute__((visibility("default"))) int tuneledger_spm_info(void* processor, int what) {
  const auto* sp = static_cast<const sentencepiece::SentencePieceProcessor*>(processor);
  switch (what) {
    case kTuneledgerSpmPieceSize:
      return sp->GetPieceSize();
    case kTuneledgerSpmBosId:
      return sp->bos_id();
    case kTuneledgerSpmEosId:
      return sp->eos_id();
    case kTuneledgerSpmPadId:
      return sp->pad_id();
  }
  return -1;
}

}  // extern "C"
