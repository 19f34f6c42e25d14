#include "worker/trainer/model/safetensors_writer.h"

#include <fcntl.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "lm/trainer_error.h"
#include "worker/trainer/model/safetensors_reader.h"

namespace tuneledger::train {
namespace {

// Writes all of `size` bytes or throws naming `path`.
void WriteAll(int fd, const void* data, size_t size, const std::string& path) {
  const auto* bytes = static_cast<const uint8_t*>(data);
  while (size > 0) {
    const ssize_t written = ::write(fd, bytes, size);
    if (written < 0) {
      if (errno == EINTR) continue;
      throw TrainError(path + ": write failed: " + std::strerror(errno));
    }
    bytes += written;
    size -= static_cast<size_t>(written);
  }
}

// Writes the pieces in order to path + ".tmp", fsyncs, renames onto `path`.
void WritePiecesAtomically(const std::string& path,
                           const std::vector<std::pair<const void*, size_t>>& pieces) {
  const std::string tmp_path = path + ".tmp";
  const int fd = ::open(tmp_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw TrainError(tmp_path + ": cannot create: " + std::strerror(errno));
  try {
    for (const auto& [data, size] : pieces) WriteAll(fd, data, size, tmp_path);
    if (::fsync(fd) != 0) throw TrainError(tmp_path + ": fsync failed: " + std::strerror(errno));
  } catch (...) {
    ::close(fd);
    ::unlink(tmp_path.c_str());
    throw;
  }
  if (::close(fd) != 0) {
    ::unlink(tmp_path.c_str());
    throw TrainError(tmp_path + ": close failed: " + std::strerror(errno));
  }
  if (std::rename(tmp_path.c_str(), path.c_str()) != 0) {
    const int error = errno;
    ::unlink(tmp_path.c_str());
    throw TrainError(path + ": rename failed: " + std::strerror(error));
  }
}

}  // namespace

void WriteSafetensors(const std::string& path,
                      const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<torch::Tensor> contiguous;  // CPU, contiguous, in file order
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (name == "__metadata__" || !seen.insert(name).second) {
      throw TrainError(path + ": duplicate or reserved tensor name '" + name + "'");
    }
    std::string dtype;
    try {
      dtype = SafetensorsDtypeName(tensor.scalar_type());
    } catch (const TrainError& error) {
      throw TrainError(path + ": tensor '" + name + "': " + error.what());
    }
    torch::Tensor data = tensor.detach().to(torch::kCPU).contiguous();
    const uint64_t bytes = data.numel() * data.element_size();
    header[name] = {{"dtype", dtype},
                    {"shape", data.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    contiguous.push_back(std::move(data));
  }
  std::string header_text = header.dump();
  header_text.append((8 - header_text.size() % 8) % 8, ' ');  // data area 8-byte aligned
  uint8_t length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<uint8_t>(header_text.size() >> (8 * i));

  std::vector<std::pair<const void*, size_t>> pieces = {{length, sizeof(length)},
                                                        {header_text.data(), header_text.size()}};
  for (const torch::Tensor& data : contiguous) {
    pieces.emplace_back(data.data_ptr(), data.numel() * data.element_size());
  }
  WritePiecesAtomically(path, pieces);
}

void WriteFileAtomically(const std::string& path, const std::string& bytes) {
  WritePiecesAtomically(path, {{bytes.data(), bytes.size()}});
}

}  // namespace tuneledger::train
