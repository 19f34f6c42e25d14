// Fuzz target: the safetensors header check (worker/trainer/model/safetensors_header.h) on a
// whole file image. Only a TrainError may come out, and what it accepts must be safe for
// SafetensorsFile::Tensor to copy: every tensor inside the data area, sized dtype x shape, no
// two overlapping. Seeds: tests/fuzz/safetensors_header/ (tests/fuzz/make_seeds.py).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "lm/trainer_error.h"
#include "tests/fuzz/fuzz_check.h"
#include "worker/trainer/model/safetensors_header.h"

namespace tuneledger::train {
namespace {

void CheckAccepted(const SafetensorsHeader& header, size_t size) {
  FUZZ_CHECK(header.data_start >= 8 && header.data_start <= size);
  std::vector<const SafetensorsEntry*> by_offset;
  for (const SafetensorsEntry& entry : header.entries) {
    FUZZ_CHECK(entry.begin <= entry.end);
    FUZZ_CHECK(entry.end <= size - header.data_start);
    uint64_t bytes = SafetensorsDtypeSize(entry.dtype);
    FUZZ_CHECK(bytes > 0);
    for (int64_t dim : entry.shape) {
      FUZZ_CHECK(dim >= 0);
      bytes *= static_cast<uint64_t>(dim);  // unsigned: wraps only before a 0 dimension
    }
    FUZZ_CHECK(entry.end - entry.begin == bytes);
    if (bytes > 0) by_offset.push_back(&entry);
  }
  std::sort(
      by_offset.begin(), by_offset.end(),
      [](const SafetensorsEntry* a, const SafetensorsEntry* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    FUZZ_CHECK(by_offset[i - 1]->end <= by_offset[i]->begin);
  }
}

}  // namespace
}  // namespace tuneledger::train

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tuneledger::train;
  try {
    CheckAccepted(ParseSafetensorsHeader(data, size, "fuzz.safetensors"), size);
  } catch (const TrainError&) {
    // A refusal with a message is the expected outcome for most inputs.
  }
  return 0;
}
