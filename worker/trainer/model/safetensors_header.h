// The header of a safetensors file (https://github.com/huggingface/safetensors), parsed and
// validated without LibTorch, so that a fuzz target (tests/fuzz/safetensors_header_fuzzer.cc)
// and any torch-free tool can run the exact check the trainer runs. safetensors_reader.h
// memory-maps files and turns entries into tensors.
//
//   [8 bytes: N, little-endian u64][N bytes: JSON header][data area]
//   header: {"<name>": {"dtype": "F32", "shape": [d0, ...], "data_offsets": [begin, end]},
//            ..., "__metadata__": {"<key>": "<string>", ...} (optional)}
//   offsets are relative to the data area.
//
// Validation is complete, so that a hostile or truncated file is a TrainError naming the file
// and the problem, never a crash or an out-of-bounds read: N fits in the file (and <= 100 MB),
// the header is a JSON object, every entry is an object with exactly dtype/shape/data_offsets,
// a known dtype, a shape of non-negative integers, offsets of two integers with begin <= end
// inside the data area, end - begin == numel * dtype size (without overflow), no two tensors
// overlap, and __metadata__ is an object of strings.
//
// Thread safety: pure functions over their arguments.
#ifndef TUNELEDGER_WORKER_TRAINER_MODEL_SAFETENSORS_HEADER_H_
#define TUNELEDGER_WORKER_TRAINER_MODEL_SAFETENSORS_HEADER_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace tuneledger::train {

struct SafetensorsEntry {
  std::string name;
  std::string dtype;           // as stored and known: "F32", "BF16", ...
  std::vector<int64_t> shape;  // may be empty (a scalar)
  uint64_t begin = 0;          // byte offsets relative to the data area
  uint64_t end = 0;
};

struct SafetensorsHeader {
  std::vector<SafetensorsEntry> entries;  // sorted by name
  std::map<std::string, std::string> metadata;
  uint64_t data_start = 0;  // file offset of the data area (8 + N)
};

// Validates a complete file image (`size` bytes at `data`) and returns its header. Pure, so a
// fuzz test can call it on mutated buffers. `what` names the file in error messages.
// Throws TrainError naming the problem.
SafetensorsHeader ParseSafetensorsHeader(const uint8_t* data, size_t size, const std::string& what);

// Bytes per element of a safetensors dtype ("F32" -> 4); 0 for a dtype this reader does not know.
uint64_t SafetensorsDtypeSize(const std::string& dtype);

}  // namespace tuneledger::train

#endif  // TUNELEDGER_WORKER_TRAINER_MODEL_SAFETENSORS_HEADER_H_
