// Block-wise quantization of frozen base weights, the CPU reference (issue "GPU speed and
// memory", point 4): what a GPU dequantization kernel must reproduce value for value.
//
// NF4 (QLoRA, Dettmers et al. 2023, "4-bit NormalFloat"): a weight tensor, flattened in row-major
// order, is cut into blocks of `block_size` values (64 by default; the last block may be
// shorter). Each block stores its absmax (the largest |x|, fp32) and, per value, the 4-bit index
// of the NF4 code nearest to x / absmax (ties go to the lower index). Two indexes share a byte:
// the earlier value in the high nibble, the later in the low one (as bitsandbytes packs them).
// Dequantization is code[index] x absmax. A block of zeros has absmax 0 and dequantizes to zeros.
//
// NF4 with double quantization (QLoRA's "DQ"): the absmax constants are quantized in turn, to 8
// bits, which takes their cost from 32 / 64 = 0.5 bits a weight to 8 / 64 + 32 / (64 x 256),
// about 0.127. With c the mean of all the tensor's absmax (fp32), per block of 256 absmax values
// s = max |absmax - c| / 127 and q = round-half-away((absmax - c) / s) in [-127, 127] (s = 0:
// q = 0). A block is dequantized with absmax~ = max(0, q x s + c) (the product rounded to fp32,
// then the sum), and its NF4 indexes are chosen against absmax~, the value dequantization uses,
// not the exact absmax. |absmax~ - absmax| <= s / 2 (plus fp32 rounding). The paper stores the
// second level as 8-bit floats; this is an 8-bit integer code around the mean, whose error bound
// is the one above.
//
// INT8: per row of a [rows, cols] matrix, scale = absmax / 127 and q = round-half-away(x / scale)
// in [-127, 127]; dequantization is q x scale. A row of zeros has scale 0.
//
// Non-finite input (NaN, +-Inf) is a TrainError naming the flat index: a weight file that holds
// one is damaged, and a quantized NaN would hide it.
//
// Thread safety: pure functions.
#ifndef TUNELEDGER_WORKER_TRAINER_QUANT_BLOCK_QUANT_H_
#define TUNELEDGER_WORKER_TRAINER_QUANT_BLOCK_QUANT_H_

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "worker/trainer/quant/nf4_codebook.h"

namespace tuneledger::train::quant {

inline constexpr int kNf4DefaultBlockSize = 64;
inline constexpr int kDoubleQuantBlockSize = 256;

// How the frozen base projections are stored (jobs.proto's LoraConfig.QuantizeBase): kNf4 as
// QuantizeNf4 with kNf4DefaultBlockSize, kNf4DoubleQuant the same with double_quant, kInt8 as
// QuantizeInt8Rows.
enum class BaseQuantization { kNone, kNf4, kNf4DoubleQuant, kInt8 };
// "none", "nf4", "nf4-dq", "int8".
const char* BaseQuantizationName(BaseQuantization scheme);

// The second level of double quantization: the absmax of every NF4 block, in 8 bits.
struct QuantizedAbsmax {
  float offset = 0;  // c, the mean of the absmax values
  int block_size = kDoubleQuantBlockSize;
  std::vector<int8_t> values;  // q, one per NF4 block
  std::vector<float> scales;   // s, ceil(values / block_size)
};

struct Nf4Tensor {
  int64_t numel = 0;
  int block_size = kNf4DefaultBlockSize;
  std::vector<uint8_t> packed;  // ceil(numel / 2) bytes, two 4-bit indexes each
  // ceil(numel / block_size) block scales: the exact absmax, or with double_quant the absmax~
  // that DequantizeAbsmax(*double_quant) gives (what is stored is double_quant).
  std::vector<float> absmax;
  std::optional<QuantizedAbsmax> double_quant;
};

// The index of the NF4 code nearest to `normalized` (expected in [-1, 1]; values outside clamp to
// the ends); ties go to the lower index.
uint8_t Nf4Index(float normalized);

// Throws TrainError for block_size < 2 or odd, or for a non-finite value.
Nf4Tensor QuantizeNf4(std::span<const float> values, int block_size = kNf4DefaultBlockSize,
                      bool double_quant = false);
std::vector<float> DequantizeNf4(const Nf4Tensor& tensor);
// The 4-bit index of element i (for tests and kernels' checks).
uint8_t Nf4IndexAt(const Nf4Tensor& tensor, int64_t i);

// The second level alone (absmax values are >= 0 and finite); TrainError for block_size < 1.
QuantizedAbsmax QuantizeAbsmax(std::span<const float> absmax,
                               int block_size = kDoubleQuantBlockSize);
std::vector<float> DequantizeAbsmax(const QuantizedAbsmax& quantized);

struct Int8Tensor {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<int8_t> values;  // rows x cols, row-major
  std::vector<float> scales;   // one per row
};

// Throws TrainError when values.size() != rows x cols or for a non-finite value.
Int8Tensor QuantizeInt8Rows(std::span<const float> values, int64_t rows, int64_t cols);
std::vector<float> DequantizeInt8Rows(const Int8Tensor& tensor);

}  // namespace tuneledger::train::quant

#endif  // TUNELEDGER_WORKER_TRAINER_QUANT_BLOCK_QUANT_H_
