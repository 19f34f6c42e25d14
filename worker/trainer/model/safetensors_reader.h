// Reading safetensors files by memory-mapping them, after validating the whole header with
// ParseSafetensorsHeader (safetensors_header.h: the format and every check on it).
//
// Thread safety: a SafetensorsFile is immutable after Open; concurrent reads are safe.
#ifndef TUNELEDGER_WORKER_TRAINER_MODEL_SAFETENSORS_READER_H_
#define TUNELEDGER_WORKER_TRAINER_MODEL_SAFETENSORS_READER_H_

#include <torch/types.h>

#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "worker/trainer/model/safetensors_header.h"

namespace tuneledger::train {

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

#endif  // TUNELEDGER_WORKER_TRAINER_MODEL_SAFETENSORS_READER_H_
