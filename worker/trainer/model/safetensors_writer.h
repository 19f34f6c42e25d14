// Writing safetensors files (format: see safetensors_reader.h), and the one atomic file write
// of the model side (also used for config.json and adapter_config.json).
//
// Thread safety: stateless; concurrent calls on different paths are safe.
#ifndef TUNELEDGER_WORKER_TRAINER_MODEL_SAFETENSORS_WRITER_H_
#define TUNELEDGER_WORKER_TRAINER_MODEL_SAFETENSORS_WRITER_H_

#include <torch/types.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace tuneledger::train {

// Writes `tensors` (any device; each in its own dtype, which must have a safetensors name) in
// the given order, the header padded with spaces to a multiple of 8 bytes, and `metadata` as
// __metadata__. Atomic: writes path + ".tmp", fsyncs, renames. Throws TrainError naming the
// file (I/O) or the tensor (duplicate name, unsupported dtype).
void WriteSafetensors(const std::string& path,
                      const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Writes `bytes` to path + ".tmp", fsyncs, renames onto `path`. TrainError naming the file.
void WriteFileAtomically(const std::string& path, const std::string& bytes);

}  // namespace tuneledger::train

#endif  // TUNELEDGER_WORKER_TRAINER_MODEL_SAFETENSORS_WRITER_H_
