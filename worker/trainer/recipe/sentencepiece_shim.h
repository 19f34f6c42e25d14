// The C ABI of the SentencePiece shim (libtuneledger_sentencepiece.so), the only code that
// links libsentencepiece.
//
// Why a shim: Debian's libsentencepiece embeds its own protobuf-lite (3.14) and exports those
// symbols. In a process that also loads libprotobuf.so (LibTorch depends on it), either
// library's protobuf calls bind to the other's copy and the process crashes during static
// initialisation. sentencepiece_tokenizer.cc therefore dlopen()s this shim with
// RTLD_LOCAL | RTLD_DEEPBIND: libsentencepiece resolves its protobuf symbols to its own copy,
// and its exports never enter the global scope that libprotobuf resolves against.
//
// The functions use C linkage (stable dlsym names) but pass libstdc++ types: both sides share
// the process's one libstdc++. No exception crosses the boundary: failures return false /
// nullptr with a message in *error.
//
// Limit of RTLD_DEEPBIND: libsentencepiece binds libstdc++'s data symbols (std::cerr) to
// libstdc++'s own instances rather than the executable's copy-relocated ones, so code paths
// that log (the trainer, SentencePieceTrainer) crash inside the shim. Loading, encoding and
// decoding do not log; tests train tokenizer models in a separate torch-free process.
#ifndef TUNELEDGER_WORKER_TRAINER_RECIPE_SENTENCEPIECE_SHIM_H_
#define TUNELEDGER_WORKER_TRAINER_RECIPE_SENTENCEPIECE_SHIM_H_

#include <string>
#include <vector>

extern "C" {

// What tuneledger_spm_info reports.
enum TuneledgerSpmInfo {
  kTuneledgerSpmPieceSize = 0,
  kTuneledgerSpmBosId = 1,
  kTuneledgerSpmEosId = 2,
  kTuneledgerSpmPadId = 3,
};

using TuneledgerSpmLoadFn = void* (*)(const std::string* path, std::string* error);
using TuneledgerSpmFreeFn = void (*)(void* processor);
using TuneledgerSpmEncodeFn = bool (*)(void* processor, const std::string* text,
                                       std::vector<int>* ids, std::string* error);
using TuneledgerSpmDecodeFn = bool (*)(void* processor, const std::vector<int>* ids,
                                       std::string* text, std::string* error);
using TuneledgerSpmInfoFn = int (*)(void* processor, int what);

}  // extern "C"

#endif  // TUNELEDGER_WORKER_TRAINER_RECIPE_SENTENCEPIECE_SHIM_H_
