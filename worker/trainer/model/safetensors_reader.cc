#include "worker/trainer/model/safetensors_reader.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include "lm/trainer_error.h"

namespace tuneledger::train {
namespace {

// The torch dtype of each dtype safetensors_header.cc knows.
struct TorchDtype {
  const char* name;
  torch::Dtype dtype;
};
constexpr TorchDtype kDtypes[] = {
    {"F64", torch::kFloat64},   {"F32", torch::kFloat32}, {"F16", torch::kFloat16},
    {"BF16", torch::kBFloat16}, {"I64", torch::kInt64},   {"I32", torch::kInt32},
    {"I16", torch::kInt16},     {"I8", torch::kInt8},     {"U8", torch::kUInt8},
    {"BOOL", torch::kBool},
};

}  // namespace

torch::Dtype SafetensorsDtype(const std::string& dtype) {
  for (const TorchDtype& info : kDtypes) {
    if (dtype == info.name) return info.dtype;
  }
  throw TrainError("safetensors: unknown or unsupported dtype '" + dtype + "'");
}

std::string SafetensorsDtypeName(torch::Dtype dtype) {
  for (const TorchDtype& info : kDtypes) {
    if (info.dtype == dtype) return info.name;
  }
  throw TrainError(std::string("safetensors: no dtype name for ") + c10::toString(dtype));
}

SafetensorsFile SafetensorsFile::Open(const std::string& path) {
  SafetensorsFile file;
  file.path_ = path;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw TrainError(path + ": cannot open: " + std::strerror(errno));
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    const int error = errno;
    ::close(fd);
    throw TrainError(path + ": cannot stat: " + std::strerror(error));
  }
  if (!S_ISREG(info.st_mode)) {
    ::close(fd);
    throw TrainError(path + ": not a regular file");
  }
  file.mapping_size_ = static_cast<size_t>(info.st_size);
  if (file.mapping_size_ > 0) {
    void* mapping = ::mmap(nullptr, file.mapping_size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (mapping == MAP_FAILED) {
      const int error = errno;
      ::close(fd);
      throw TrainError(path + ": cannot mmap: " + std::strerror(error));
    }
    file.mapping_ = mapping;
  }
  ::close(fd);  // the mapping stays valid
  file.header_ =
      ParseSafetensorsHeader(static_cast<const uint8_t*>(file.mapping_), file.mapping_size_, path);
  for (size_t i = 0; i < file.header_.entries.size(); ++i) {
    file.index_[file.header_.entries[i].name] = i;
  }
  return file;
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& other) noexcept { *this = std::move(other); }

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& other) noexcept {
  if (this != &other) {
    if (mapping_ != nullptr) ::munmap(mapping_, mapping_size_);
    path_ = std::move(other.path_);
    mapping_ = std::exchange(other.mapping_, nullptr);
    mapping_size_ = std::exchange(other.mapping_size_, 0);
    header_ = std::move(other.header_);
    index_ = std::move(other.index_);
  }
  return *this;
}

SafetensorsFile::~SafetensorsFile() {
  if (mapping_ != nullptr) ::munmap(mapping_, mapping_size_);
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> names;
  names.reserve(header_.entries.size());
  for (const SafetensorsEntry& entry : header_.entries) names.push_back(entry.name);
  return names;
}

bool SafetensorsFile::Contains(const std::string& name) const { return index_.count(name) > 0; }

const SafetensorsEntry& SafetensorsFile::Entry(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) throw TrainError(path_ + ": no tensor '" + name + "'");
  return header_.entries[it->second];
}

torch::Tensor SafetensorsFile::Tensor(const std::string& name) const {
  const SafetensorsEntry& entry = Entry(name);
  torch::Tensor tensor =
      torch::empty(entry.shape, torch::dtype(SafetensorsDtype(entry.dtype)));  // stored
  const size_t bytes = entry.end - entry.begin;
  if (bytes > 0) {
    // Safetensors data is little-endian, as is every machine we build for.
    std::memcpy(tensor.data_ptr(),
                static_cast<const uint8_t*>(mapping_) + header_.data_start + entry.begin, bytes);
  }
  return tensor;
}

}  // namespace tuneledger::train
