// Reading safetensors files (https://github.com/huggingface/safetensors, format below) by
// memory-mapping them, after validating the whole header.
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
// Thread safety: a SafetensorsFile is immutable after Open; concurrent reads are safe.
#ifndef TUNELEDGER_WORKER_TRAINER_SAFETENSORS_READER_H_
#define TUNELEDGER_WORKER_TRAINER_SAFETENSORS_READER_H_

#include <torch/types.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace tuneledger::train {

struct SafetensorsEntry {
  std::string name;
  std::string dtype;           // as stored: "F32", "BF16", ...
  torch::Dtype scalar_type;    // the matching torch dtype
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

// The torch dtype of a safetensors dtype string ("F32" -> kFloat32); TrainError when unknown.
torch::Dtype SafetensorsDtype(const std::string& dtype);
// The safetensors spelling of a torch dtype (kBFloat16 -> "BF16"); TrainError when none.
std::string SafetensorsDtypeName(torch::Dtype dtype);

class SafetensorsFile {
 public:
  // Memory-maps `path` and validates it. Throws TrainError naming the file and the problem.
  static SafetensorsFile Open(const std::string& path);

  SafetensorsFile(SafetensorsFile&& other) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&& other) noexcept;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  ~SafetensorsFile();

  // Tensor names, sorted.
  std::vector<std::string> names() const;
  bool Contains(const std::string& name) const;
  // The header entry; TrainError naming the tensor and the file when absent.
  const SafetensorsEntry& Entry(const std::string& name) const;
  // A CPU copy of the tensor in its stored dtype; TrainError naming the tensor when absent.
  torch::Tensor Tensor(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  const std::string& path() const { return path_; }

 private:
  SafetensorsFile() = default;

  std::string path_;
  void* mapping_ = nullptr;  // the whole file, read-only; owned
  size_t mapping_size_ = 0;
  SafetensorsHeader header_;
  std::map<std::string, size_t> index_;  // name -> position in header_.entries
};

}  // namespace tuneledger::train

#endif  // TUNELEDGER_WORKER_TRAINER_SAFETENSORS_READER_H_
