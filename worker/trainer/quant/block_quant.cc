#include "worker/trainer/quant/block_quant.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "lm/trainer_error.h"

namespace tuneledger::train::quant {
namespace {

void RequireFinite(std::span<const float> values) {
  for (size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) {
      throw TrainError("cannot quantize a non-finite weight at flat index " + std::to_string(i) +
                       " (" + std::to_string(values[i]) + ")");
    }
  }
}

float AbsMax(std::span<const float> values) {
  float absmax = 0;
  for (float v : values) absmax = std::max(absmax, std::fabs(v));
  return absmax;
}

}  // namespace

const char* BaseQuantizationName(BaseQuantization scheme) {
  switch (scheme) {
    case BaseQuantization::kNf4:
      return "nf4";
    case BaseQuantization::kNf4DoubleQuant:
      return "nf4-dq";
    case BaseQuantization::kInt8:
      return "int8";
    case BaseQuantization::kNone:
      break;
  }
  return "none";
}

uint8_t Nf4Index(float normalized) {
  // The codebook is increasing: the nearest code is one of the two around the first code >= x.
  const auto upper = std::lower_bound(kNf4Codebook.begin(), kNf4Codebook.end(), normalized);
  if (upper == kNf4Codebook.begin()) return 0;
  if (upper == kNf4Codebook.end()) return static_cast<uint8_t>(kNf4Codebook.size() - 1);
  const auto lower = upper - 1;
  // Ties (x exactly at a midpoint) go to the lower code.
  return static_cast<uint8_t>(normalized - *lower <= *upper - normalized
                                  ? lower - kNf4Codebook.begin()
                                  : upper - kNf4Codebook.begin());
}

QuantizedAbsmax QuantizeAbsmax(std::span<const float> absmax, int block_size) {
  if (block_size < 1) {
    throw TrainError("double quantization block size must be >= 1, got " +
                     std::to_string(block_size));
  }
  QuantizedAbsmax quantized;
  quantized.block_size = block_size;
  double sum = 0;
  for (float a : absmax) sum += a;
  quantized.offset = absmax.empty() ? 0.0f : static_cast<float>(sum / absmax.size());
  quantized.values.resize(absmax.size());
  const size_t blocks = (absmax.size() + block_size - 1) / block_size;
  quantized.scales.resize(blocks);
  for (size_t b = 0; b < blocks; ++b) {
    const size_t begin = b * block_size;
    const size_t end = std::min(absmax.size(), begin + block_size);
    float widest = 0;
    for (size_t i = begin; i < end; ++i) {
      widest = std::max(widest, std::fabs(absmax[i] - quantized.offset));
    }
    const float scale = widest / 127.0f;
    quantized.scales[b] = scale;
    for (size_t i = begin; i < end; ++i) {
      const float q = scale == 0 ? 0.0f : std::round((absmax[i] - quantized.offset) / scale);
      quantized.values[i] = static_cast<int8_t>(std::clamp(q, -127.0f, 127.0f));
    }
  }
  return quantized;
}

std::vector<float> DequantizeAbsmax(const QuantizedAbsmax& quantized) {
  std::vector<float> absmax(quantized.values.size());
  for (size_t i = 0; i < absmax.size(); ++i) {
    const float product =
        static_cast<float>(quantized.values[i]) * quantized.scales[i / quantized.block_size];
    absmax[i] = std::max(0.0f, product + quantized.offset);
  }
  return absmax;
}

Nf4Tensor QuantizeNf4(std::span<const float> values, int block_size, bool double_quant) {
  if (block_size < 2 || block_size % 2 != 0) {
    throw TrainError("NF4 block size must be even and >= 2, got " + std::to_string(block_size));
  }
  RequireFinite(values);
  Nf4Tensor tensor;
  tensor.numel = static_cast<int64_t>(values.size());
  tensor.block_size = block_size;
  tensor.packed.assign((values.size() + 1) / 2, 0);
  const size_t blocks = (values.size() + block_size - 1) / block_size;
  tensor.absmax.resize(blocks);
  for (size_t b = 0; b < blocks; ++b) {
    const size_t begin = b * block_size;
    tensor.absmax[b] =
        AbsMax(values.subspan(begin, std::min(values.size(), begin + block_size) - begin));
  }
  if (double_quant) {
    tensor.double_quant = QuantizeAbsmax(tensor.absmax);
    tensor.absmax = DequantizeAbsmax(*tensor.double_quant);
  }
  for (size_t b = 0; b < blocks; ++b) {
    const size_t begin = b * block_size;
    const size_t end = std::min(values.size(), begin + block_size);
    const float absmax = tensor.absmax[b];
    for (size_t i = begin; i < end; ++i) {
      const uint8_t index = absmax == 0 ? Nf4Index(0.0f) : Nf4Index(values[i] / absmax);
      // The earlier value of each pair in the high nibble.
      tensor.packed[i / 2] |= static_cast<uint8_t>(i % 2 == 0 ? index << 4 : index);
    }
  }
  return tensor;
}

uint8_t Nf4IndexAt(const Nf4Tensor& tensor, int64_t i) {
  const uint8_t byte = tensor.packed[static_cast<size_t>(i / 2)];
  return i % 2 == 0 ? static_cast<uint8_t>(byte >> 4) : static_cast<uint8_t>(byte & 0x0F);
}

std::vector<float> DequantizeNf4(const Nf4Tensor& tensor) {
  std::vector<float> out(static_cast<size_t>(tensor.numel));
  for (int64_t i = 0; i < tensor.numel; ++i) {
    out[static_cast<size_t>(i)] = kNf4Codebook[Nf4IndexAt(tensor, i)] *
                                  tensor.absmax[static_cast<size_t>(i / tensor.block_size)];
  }
  return out;
}

Int8Tensor QuantizeInt8Rows(std::span<const float> values, int64_t rows, int64_t cols) {
  if (rows < 0 || cols < 0 || static_cast<int64_t>(values.size()) != rows * cols) {
    throw TrainError("INT8 quantization of a [" + std::to_string(rows) + ", " +
                     std::to_string(cols) + "] matrix got " + std::to_string(values.size()) +
                     " values");
  }
  RequireFinite(values);
  Int8Tensor tensor;
  tensor.rows = rows;
  tensor.cols = cols;
  tensor.values.resize(values.size());
  tensor.scales.resize(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    const std::span<const float> row =
        values.subspan(static_cast<size_t>(r * cols), static_cast<size_t>(cols));
    const float scale = AbsMax(row) / 127.0f;
    tensor.scales[static_cast<size_t>(r)] = scale;
    for (int64_t c = 0; c < cols; ++c) {
      const float q = scale == 0 ? 0.0f : std::round(row[static_cast<size_t>(c)] / scale);
      tensor.values[static_cast<size_t>(r * cols + c)] =
          static_cast<int8_t>(std::clamp(q, -127.0f, 127.0f));
    }
  }
  return tensor;
}

std::vector<float> DequantizeInt8Rows(const Int8Tensor& tensor) {
  std::vector<float> out(tensor.values.size());
  for (int64_t r = 0; r < tensor.rows; ++r) {
    for (int64_t c = 0; c < tensor.cols; ++c) {
      const size_t i = static_cast<size_t>(r * tensor.cols + c);
      out[i] = tensor.values[i] * tensor.scales[static_cast<size_t>(r)];
    }
  }
  return out;
}

}  // namespace tuneledger::train::quant
