#include "worker/trainer/recipe/sentencepiece_tokenizer.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <optional>

#include "base/executable_dir.h"
#include "lm/trainer_error.h"
#include "worker/trainer/recipe/sentencepiece_shim.h"

namespace tuneledger::train {
namespace {

namespace fs = std::filesystem;

constexpr const char* kShimFileName = "libtuneledger_sentencepiece.so";

// The shim's entry points, loaded once.
struct ShimLibrary {
  TuneledgerSpmLoadFn load = nullptr;
  TuneledgerSpmFreeFn free = nullptr;
  TuneledgerSpmEncodeFn encode = nullptr;
  TuneledgerSpmDecodeFn decode = nullptr;
  TuneledgerSpmInfoFn info = nullptr;
  std::string error;  // why loading failed; empty when loaded
};

std::vector<std::string> CandidatePaths() {
  std::vector<std::string> paths;
  if (const char* env = std::getenv("TUNELEDGER_SENTENCEPIECE_SHIM")) paths.push_back(env);
  if (const std::optional<fs::path> exe_dir = ExecutableDir()) {
    paths.push_back((exe_dir->parent_path() / "lib" / kShimFileName).string());
    paths.push_back((*exe_dir / kShimFileName).string());
  }
#ifdef TUNELEDGER_SENTENCEPIECE_SHIM_PATH
  paths.push_back(TUNELEDGER_SENTENCEPIECE_SHIM_PATH);
#endif
  return paths;
}

ShimLibrary LoadShim() {
  ShimLibrary shim;
  void* handle = nullptr;
  std::string tried;
  for (const std::string& path : CandidatePaths()) {
    if (!fs::exists(path)) {
      tried += " " + path;
      continue;
    }
    // RTLD_DEEPBIND: libsentencepiece binds to its own protobuf-lite; RTLD_LOCAL: its symbols
    // stay out of the global scope that libprotobuf (via LibTorch) resolves against.
    handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (handle != nullptr) break;
    tried += " " + path + " (" + ::dlerror() + ")";
  }
  if (handle == nullptr) {
    shim.error =
        std::string("cannot load the SentencePiece shim ") + kShimFileName + "; tried:" + tried;
    return shim;
  }
  auto symbol = [&](const char* name) {
    void* address = ::dlsym(handle, name);
    if (address == nullptr && shim.error.empty()) {
      shim.error = std::string(kShimFileName) + " lacks " + name;
    }
    return address;
  };
  shim.load = reinterpret_cast<TuneledgerSpmLoadFn>(symbol("tuneledger_spm_load"));
  shim.free = reinterpret_cast<TuneledgerSpmFreeFn>(symbol("tuneledger_spm_free"));
  shim.encode = reinterpret_cast<TuneledgerSpmEncodeFn>(symbol("tuneledger_spm_encode"));
  shim.decode = reinterpret_cast<TuneledgerSpmDecodeFn>(symbol("tuneledger_spm_decode"));
  shim.info = reinterpret_cast<TuneledgerSpmInfoFn>(symbol("tuneledger_spm_info"));
  return shim;  // the handle stays open for the life of the process
}

const ShimLibrary& Shim() {
  static const ShimLibrary shim = LoadShim();
  if (!shim.error.empty()) throw TrainError(shim.error);
  return shim;
}

}  // namespace

std::unique_ptr<SentencePieceTokenizer> SentencePieceTokenizer::FromFile(const std::string& path) {
  std::string error;
  void* processor = Shim().load(&path, &error);
  if (processor == nullptr) {
    throw TrainError(path + ": cannot load the SentencePiece model: " + error);
  }
  return std::unique_ptr<SentencePieceTokenizer>(new SentencePieceTokenizer(processor));
}

SentencePieceTokenizer::SentencePieceTokenizer(void* processor) : processor_(processor) {
  const ShimLibrary& shim = Shim();
  vocab_size_ = shim.info(processor_, kTuneledgerSpmPieceSize);
  bos_id_ = shim.info(processor_, kTuneledgerSpmBosId);
  eos_id_ = shim.info(processor_, kTuneledgerSpmEosId);
  const int pad = shim.info(processor_, kTuneledgerSpmPadId);
  pad_id_ = pad >= 0 ? pad : (eos_id_ >= 0 ? eos_id_ : 0);
}

SentencePieceTokenizer::~SentencePieceTokenizer() { Shim().free(processor_); }

std::vector<int64_t> SentencePieceTokenizer::Encode(const std::string& text) const {
  std::vector<int> ids;
  std::string error;
  if (!Shim().encode(processor_, &text, &ids, &error)) {
    throw TrainError("SentencePiece encode failed: " + error);
  }
  return std::vector<int64_t>(ids.begin(), ids.end());
}

std::string SentencePieceTokenizer::Decode(const std::vector<int64_t>& ids) const {
  std::vector<int> pieces;
  pieces.reserve(ids.size());
  for (int64_t id : ids) {
    // Out-of-range ids (a model can emit any id below its own vocab_size, which may exceed the
    // tokenizer's) decode to nothing rather than failing the whole sample.
    if (id < 0 || id >= vocab_size_) continue;
    pieces.push_back(static_cast<int>(id));
  }
  std::string text;
  std::string error;
  if (!Shim().decode(processor_, &pieces, &text, &error)) {
    throw TrainError("SentencePiece decode failed: " + error);
  }
  return text;
}

}  // namespace tuneledger::train
