// SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number generators", 2014): a
// small, fully specified generator, and its finaliser as a 64-bit mixing function. Fully specified
// means the same numbers with any standard library (std::shuffle's use of an engine is
// implementation-defined). Header-only, the C++ standard library alone: the data order
// (lm/data/epoch_order.cc) and the trainer's per-row dropout seeds (worker/trainer/model/
// lora_linear.cc) use it.
// Thread safety: SplitMix64 is a value type with no sharing; SplitMix64Mix is a pure function.
#ifndef TUNELEDGER_BASE_SPLIT_MIX64_H_
#define TUNELEDGER_BASE_SPLIT_MIX64_H_

#include <cstdint>

namespace tuneledger {

// The finaliser: a bijection of 64-bit values in which every input bit flips about half the
// output bits.
constexpr uint64_t SplitMix64Mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t Next() { return SplitMix64Mix(state_ += 0x9E3779B97F4A7C15ULL); }
  // Uniform in [0, n) without modulo bias (rejection sampling); n > 0.
  uint64_t Below(uint64_t n) {
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t value;
    do {
      value = Next();
    } while (value >= limit);
    return value % n;
  }

 private:
  uint64_t state_;
};

}  // namespace tuneledger

#endif  // TUNELEDGER_BASE_SPLIT_MIX64_H_
