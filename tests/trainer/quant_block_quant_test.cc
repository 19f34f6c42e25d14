#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lm/trainer_error.h"
#include "worker/trainer/quant/block_quant.h"

namespace tuneledger::train::quant {
namespace {

// The standard normal quantile, by bisection on Phi(x) = erfc(-x / sqrt(2)) / 2.
double NormalQuantile(double p) {
  double lo = -10, hi = 10;
  for (int i = 0; i < 200; ++i) {
    const double mid = (lo + hi) / 2;
    (0.5 * std::erfc(-mid / std::sqrt(2.0)) < p ? lo : hi) = mid;
  }
  return (lo + hi) / 2;
}

std::vector<double> Linspace(double from, double to, int n) {
  std::vector<double> out;
  for (int i = 0; i < n; ++i) out.push_back(from + (to - from) * i / (n - 1));
  return out;
}

// The QLoRA construction of NF4: 8 positive quantiles of N(0, 1) between p = 0.9677083 and 0.5,
// 7 negative ones, and an exact zero, rescaled so that the largest is 1. The table the code uses
// must be that construction, not a typo of it.
TEST(Nf4Test, TheCodebookIsTheNormalQuantileConstructionOfTheQloraPaper) {
  constexpr double kOffset = 0.9677083;
  std::vector<double> values = {0.0};
  std::vector<double> positive = Linspace(kOffset, 0.5, 9);
  positive.pop_back();
  for (double p : positive) values.push_back(NormalQuantile(p));
  std::vector<double> negative = Linspace(kOffset, 0.5, 8);
  negative.pop_back();
  for (double p : negative) values.push_back(-NormalQuantile(p));
  std::sort(values.begin(), values.end());
  const double largest = values.back();
  ASSERT_EQ(values.size(), kNf4Codebook.size());
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_NEAR(kNf4Codebook[i], values[i] / largest, 1e-6) << "code " << i;
  }
  EXPECT_EQ(kNf4Codebook[7], 0.0f) << "zero is exact";
}

TEST(Nf4Test, EveryValueGoesToTheNearestCodeAndTiesToTheLowerOne) {
  for (size_t i = 0; i < kNf4Codebook.size(); ++i) {
    EXPECT_EQ(Nf4Index(kNf4Codebook[i]), i);
  }
  for (size_t i = 0; i + 1 < kNf4Codebook.size(); ++i) {
    const float low = kNf4Codebook[i];
    const float high = kNf4Codebook[i + 1];
    const float mid = (low + high) / 2;
    EXPECT_EQ(Nf4Index(std::nextafter(mid, low)), i);
    EXPECT_EQ(Nf4Index(std::nextafter(mid, high)), i + 1);
  }
  // An exact tie: halfway between 0 and the first positive code (halving is exact in float).
  EXPECT_EQ(Nf4Index(kNf4Codebook[8] / 2), 7);
  EXPECT_EQ(Nf4Index(kNf4Codebook[6] / 2), 6);
  EXPECT_EQ(Nf4Index(-3.0f), 0);
  EXPECT_EQ(Nf4Index(3.0f), 15);
}

// Values that are codes times the block's absmax come back exactly; indexes pack two to a byte,
// the earlier value in the high nibble.
TEST(Nf4Test, CodesTimesAbsmaxRoundTripExactlyAndPackHighNibbleFirst) {
  std::vector<float> values;
  for (int i = 0; i < 16; ++i) values.push_back(kNf4Codebook[static_cast<size_t>(i)] * 2.0f);
  for (int i = 15; i >= 0; --i) values.push_back(kNf4Codebook[static_cast<size_t>(i)] * 0.5f);
  const Nf4Tensor tensor = QuantizeNf4(values, /*block_size=*/16);
  ASSERT_EQ(tensor.absmax.size(), 2u);
  EXPECT_EQ(tensor.absmax[0], 2.0f);
  EXPECT_EQ(tensor.absmax[1], 0.5f);
  ASSERT_EQ(tensor.packed.size(), 16u);
  EXPECT_EQ(tensor.packed[0], 0x01) << "codes 0 and 1";
  EXPECT_EQ(tensor.packed[7], 0xEF) << "codes 14 and 15";
  EXPECT_EQ(DequantizeNf4(tensor), values);
}

// On normal weights the error of each value is at most half the widest gap between neighbouring
// codes times its block's absmax, and the mean error is far below it.
TEST(Nf4Test, RoundTripErrorIsBoundedByHalfTheWidestCodeGap) {
  std::mt19937 random(7);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<float> values(64 * 100 + 10);  // a short last block too
  for (float& v : values) v = normal(random);
  const Nf4Tensor tensor = QuantizeNf4(values);
  ASSERT_EQ(tensor.absmax.size(), 101u);
  const std::vector<float> back = DequantizeNf4(tensor);
  float widest_gap = 0;
  for (size_t i = 0; i + 1 < kNf4Codebook.size(); ++i) {
    widest_gap = std::max(widest_gap, kNf4Codebook[i + 1] - kNf4Codebook[i]);
  }
  double total_error = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    const float absmax = tensor.absmax[i / 64];
    const float error = std::fabs(back[i] - values[i]);
    EXPECT_LE(error, widest_gap / 2 * absmax * (1 + 1e-6f)) << "value " << i;
    total_error += error;
  }
  // Normal weights sit where the codes are dense: mean error well under a tenth of absmax.
  EXPECT_LT(total_error / values.size(), 0.1 * 0.02 * 2.5);
}

TEST(Nf4Test, AZeroBlockStaysZeroAndBadInputIsAnErrorNamingTheIndex) {
  const Nf4Tensor zeros = QuantizeNf4(std::vector<float>(70, 0.0f));
  EXPECT_EQ(zeros.absmax, std::vector<float>({0.0f, 0.0f}));
  EXPECT_EQ(DequantizeNf4(zeros), std::vector<float>(70, 0.0f));
  std::vector<float> values(10, 1.0f);
  values[6] = std::nanf("");
  EXPECT_THAT([&] { QuantizeNf4(values); },
              ::testing::ThrowsMessage<TrainError>(::testing::HasSubstr("flat index 6")));
  EXPECT_THROW(QuantizeNf4(std::vector<float>(4, 1.0f), /*block_size=*/3), TrainError);
}

// The second level of double quantization on values whose steps are exact: mean c = 128, widest
// distance 127, so s = 1 and q = absmax - c, rounded half away from zero; a block whose values
// all equal c has s = 0 and comes back as c exactly.
TEST(DoubleQuantTest, AbsmaxAreCodedAroundTheirMeanPerBlockOf256) {
  std::vector<float> absmax = {1.0f, 255.0f, 128.5f, 127.5f};
  QuantizedAbsmax quantized = QuantizeAbsmax(absmax);
  EXPECT_EQ(quantized.offset, 128.0f);
  EXPECT_EQ(quantized.scales, std::vector<float>({1.0f}));
  EXPECT_EQ(quantized.values, std::vector<int8_t>({-127, 127, 1, -1}));
  EXPECT_EQ(DequantizeAbsmax(quantized), std::vector<float>({1.0f, 255.0f, 129.0f, 127.0f}));
  // Two blocks of 2: the second is all at the mean.
  quantized = QuantizeAbsmax(std::vector<float>({1.0f, 255.0f, 128.0f, 128.0f}), /*block_size=*/2);
  EXPECT_EQ(quantized.scales, std::vector<float>({1.0f, 0.0f}));
  EXPECT_EQ(DequantizeAbsmax(quantized), std::vector<float>({1.0f, 255.0f, 128.0f, 128.0f}));
  // A coded value below zero comes back as 0, never as a negative absmax (which would flip the
  // block's signs).
  QuantizedAbsmax below;
  below.offset = 1.0f;
  below.block_size = 2;
  below.values = {-3, 2};
  below.scales = {1.0f};
  EXPECT_EQ(DequantizeAbsmax(below), std::vector<float>({0.0f, 3.0f}));
  EXPECT_THROW(QuantizeAbsmax(absmax, /*block_size=*/0), TrainError);
}

// NF4 with double quantization on normal weights: the stored absmax are 8-bit codes (one fp32
// scale per 256 blocks), the block scales used are DequantizeAbsmax's, each is within half a
// step of the exact absmax, and each value's error is at most half the widest code gap times the
// used absmax, plus what the used absmax falls short of the exact one (values past it clamp).
TEST(DoubleQuantTest, Nf4WithQuantizedAbsmaxStaysWithinTheNf4BoundPlusTheScaleError) {
  std::mt19937 random(11);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<float> values(64 * 600 + 30);  // 601 NF4 blocks: 3 second-level blocks
  for (float& v : values) v = normal(random);
  const Nf4Tensor plain = QuantizeNf4(values);
  const Nf4Tensor tensor = QuantizeNf4(values, kNf4DefaultBlockSize, /*double_quant=*/true);
  ASSERT_FALSE(plain.double_quant.has_value());
  ASSERT_TRUE(tensor.double_quant.has_value());
  const QuantizedAbsmax& dq = *tensor.double_quant;
  ASSERT_EQ(dq.values.size(), 601u);
  ASSERT_EQ(dq.scales.size(), 3u);
  EXPECT_EQ(tensor.absmax, DequantizeAbsmax(dq));
  for (size_t b = 0; b < plain.absmax.size(); ++b) {
    EXPECT_LE(std::fabs(tensor.absmax[b] - plain.absmax[b]),
              dq.scales[b / 256] / 2 * (1 + 1e-4f) + 1e-9f)
        << "block " << b;
  }
  const std::vector<float> back = DequantizeNf4(tensor);
  const std::vector<float> back_plain = DequantizeNf4(plain);
  float widest_gap = 0;
  for (size_t i = 0; i + 1 < kNf4Codebook.size(); ++i) {
    widest_gap = std::max(widest_gap, kNf4Codebook[i + 1] - kNf4Codebook[i]);
  }
  double error = 0;
  double error_plain = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    const float used = tensor.absmax[i / 64];
    const float shortfall = std::max(0.0f, plain.absmax[i / 64] - used);
    EXPECT_LE(std::fabs(back[i] - values[i]), widest_gap / 2 * used * (1 + 1e-6f) + shortfall)
        << "value " << i;
    error += std::fabs(back[i] - values[i]);
    error_plain += std::fabs(back_plain[i] - values[i]);
  }
  // The second level costs almost nothing in accuracy.
  EXPECT_LT(error, error_plain * 1.01);
  // A zero block still dequantizes to zeros (its absmax~ need not be 0).
  std::vector<float> with_zeros = values;
  std::fill(with_zeros.begin(), with_zeros.begin() + 64, 0.0f);
  const std::vector<float> zeros =
      DequantizeNf4(QuantizeNf4(with_zeros, kNf4DefaultBlockSize, /*double_quant=*/true));
  EXPECT_EQ(std::vector<float>(zeros.begin(), zeros.begin() + 64), std::vector<float>(64, 0.0f));
}

TEST(Int8Test, RowsScaleByTheirAbsmaxAndRoundHalfAwayFromZero) {
  // Row 0: absmax 127 -> scale 1, so values round to integers; row 1 is zeros.
  const std::vector<float> values = {127.0f, -2.5f, 2.5f, 0.4f, 0.0f, 0.0f, 0.0f, 0.0f};
  const Int8Tensor tensor = QuantizeInt8Rows(values, 2, 4);
  EXPECT_EQ(tensor.scales, std::vector<float>({1.0f, 0.0f}));
  EXPECT_EQ(tensor.values, std::vector<int8_t>({127, -3, 3, 0, 0, 0, 0, 0}));
  EXPECT_EQ(DequantizeInt8Rows(tensor),
            std::vector<float>({127.0f, -3.0f, 3.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f}));
  std::mt19937 random(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> matrix(16 * 32);
  for (float& v : matrix) v = normal(random);
  const Int8Tensor q = QuantizeInt8Rows(matrix, 16, 32);
  const std::vector<float> back = DequantizeInt8Rows(q);
  for (size_t i = 0; i < matrix.size(); ++i) {
    EXPECT_LE(std::fabs(back[i] - matrix[i]), q.scales[i / 32] / 2 * (1 + 1e-5f)) << i;
  }
  EXPECT_THROW(QuantizeInt8Rows(matrix, 16, 31), TrainError);
}

}  // namespace
}  // namespace tuneledger::train::quant
