#include "worker/trainer/model/safetensors_header.h"

#include <algorithm>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lm/trainer_error.h"

namespace tuneledger::train {
namespace {

using nlohmann::json;

// The safetensors spec caps the header at 100 MB; a larger N is hostile.
constexpr uint64_t kMaxHeaderBytes = 100ull * 1000 * 1000;

// The dtypes this reader knows and their element sizes (safetensors_reader.cc maps each to a
// torch dtype).
struct DtypeSize {
  const char* name;
  uint64_t size;
};
constexpr DtypeSize kDtypeSizes[] = {
    {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8},
    {"I32", 4}, {"I16", 2}, {"I8", 1},  {"U8", 1},   {"BOOL", 1},
};

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? "," : "") + std::to_string(shape[i]);
  return text + "]";
}

// Parses one tensor entry; `fail` prefixes messages with the file and tensor name.
SafetensorsEntry ParseEntry(const std::string& name, const json& value, uint64_t data_size,
                            const std::string& what) {
  auto fail = [&](const std::string& problem) -> TrainError {
    return TrainError(what + ": tensor '" + name + "': " + problem);
  };
  if (!value.is_object()) throw fail("entry is not a JSON object");
  for (const auto& field : value.items()) {
    if (field.key() != "dtype" && field.key() != "shape" && field.key() != "data_offsets") {
      throw fail("unknown field '" + field.key() + "'");
    }
  }
  SafetensorsEntry entry;
  entry.name = name;

  auto dtype = value.find("dtype");
  if (dtype == value.end()) throw fail("missing dtype");
  if (!dtype->is_string()) throw fail("dtype is not a string");
  entry.dtype = dtype->get<std::string>();
  const uint64_t element_size = SafetensorsDtypeSize(entry.dtype);
  if (element_size == 0) throw fail("unknown or unsupported dtype '" + entry.dtype + "'");

  auto shape = value.find("shape");
  if (shape == value.end()) throw fail("missing shape");
  if (!shape->is_array()) throw fail("shape is not a list");
  uint64_t numel = 1;
  for (const json& dim : *shape) {
    if (!dim.is_number_unsigned()) throw fail("shape has a non-integer or negative dimension");
    const uint64_t size = dim.get<uint64_t>();
    if (size > static_cast<uint64_t>(INT64_MAX) || __builtin_mul_overflow(numel, size, &numel)) {
      throw fail("shape " + shape->dump() + " overflows");
    }
    entry.shape.push_back(static_cast<int64_t>(size));
  }
  uint64_t byte_length = 0;
  if (__builtin_mul_overflow(numel, element_size, &byte_length)) {
    throw fail("shape " + shape->dump() + " overflows");
  }

  auto offsets = value.find("data_offsets");
  if (offsets == value.end()) throw fail("missing data_offsets");
  if (!offsets->is_array() || offsets->size() != 2 || !(*offsets)[0].is_number_unsigned() ||
      !(*offsets)[1].is_number_unsigned()) {
    throw fail("data_offsets must be a list of two non-negative integers");
  }
  entry.begin = (*offsets)[0].get<uint64_t>();
  entry.end = (*offsets)[1].get<uint64_t>();
  if (entry.begin > entry.end) {
    throw fail("data_offsets begin " + std::to_string(entry.begin) + " > end " +
               std::to_string(entry.end));
  }
  if (entry.end > data_size) {
    throw fail("data_offsets end " + std::to_string(entry.end) + " is past the end of the data (" +
               std::to_string(data_size) + " bytes; file truncated?)");
  }
  if (entry.end - entry.begin != byte_length) {
    throw fail("dtype " + entry.dtype + " and shape " + ShapeString(entry.shape) + " need " +
               std::to_string(byte_length) + " bytes, data_offsets give " +
               std::to_string(entry.end - entry.begin));
  }
  return entry;
}

}  // namespace

uint64_t SafetensorsDtypeSize(const std::string& dtype) {
  for (const DtypeSize& info : kDtypeSizes) {
    if (dtype == info.name) return info.size;
  }
  return 0;
}

SafetensorsHeader ParseSafetensorsHeader(const uint8_t* data, size_t size,
                                         const std::string& what) {
  if (size < 8) {
    throw TrainError(what + ": file too short for the 8-byte header length (" +
                     std::to_string(size) + " bytes; truncated?)");
  }
  uint64_t header_length = 0;
  for (int i = 7; i >= 0; --i) header_length = (header_length << 8) | data[i];
  if (header_length > kMaxHeaderBytes) {
    throw TrainError(what + ": header length " + std::to_string(header_length) +
                     " exceeds the 100 MB limit");
  }
  if (header_length > size - 8) {
    throw TrainError(what + ": header length " + std::to_string(header_length) +
                     " is larger than the file (" + std::to_string(size) + " bytes; truncated?)");
  }
  const char* header_begin = reinterpret_cast<const char*>(data + 8);
  json header = json::parse(header_begin, header_begin + header_length, /*cb=*/nullptr,
                            /*allow_exceptions=*/false);
  if (header.is_discarded()) throw TrainError(what + ": header is not valid JSON");
  if (!header.is_object()) throw TrainError(what + ": header is not a JSON object");

  SafetensorsHeader result;
  result.data_start = 8 + header_length;
  const uint64_t data_size = size - result.data_start;
  for (const auto& item : header.items()) {
    if (item.key() == "__metadata__") {
      if (!item.value().is_object()) throw TrainError(what + ": __metadata__ is not an object");
      for (const auto& meta : item.value().items()) {
        if (!meta.value().is_string()) {
          throw TrainError(what + ": __metadata__ '" + meta.key() + "' is not a string");
        }
        result.metadata[meta.key()] = meta.value().get<std::string>();
      }
      continue;
    }
    result.entries.push_back(ParseEntry(item.key(), item.value(), data_size, what));
  }
  // Entries come sorted by name (nlohmann's object is a std::map). Check overlaps in offset
  // order; empty tensors occupy no bytes and overlap nothing.
  std::vector<const SafetensorsEntry*> by_offset;
  for (const SafetensorsEntry& entry : result.entries) {
    if (entry.end > entry.begin) by_offset.push_back(&entry);
  }
  std::sort(
      by_offset.begin(), by_offset.end(),
      [](const SafetensorsEntry* a, const SafetensorsEntry* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    if (by_offset[i]->begin < by_offset[i - 1]->end) {
      throw TrainError(what + ": tensors '" + by_offset[i - 1]->name + "' and '" +
                       by_offset[i]->name + "' overlap (bytes " +
                       std::to_string(by_offset[i]->begin) + ".." +
                       std::to_string(by_offset[i - 1]->end) + ")");
    }
  }
  return result;
}

}  // namespace tuneledger::train
