#include "worker/trainer/recipe/host_allocator.h"

#include <malloc.h>

namespace tuneledger::train {

bool KeepHostBuffersForReuse() {
  constexpr int kMmapThreshold = 1 << 30;     // 1 GiB
  constexpr int kTrimThreshold = 0x7fffffff;  // about 2 GiB, the most mallopt's int takes
  const bool mmap_set = mallopt(M_MMAP_THRESHOLD, kMmapThreshold) == 1;
  const bool trim_set = mallopt(M_TRIM_THRESHOLD, kTrimThreshold) == 1;
  return mmap_set && trim_set;
}

}  // namespace tuneledger::train
