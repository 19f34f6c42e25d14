#include <malloc.h>

#include <cstdlib>
#include <cstring>

#include "gtest/gtest.h"
#include "worker/trainer/recipe/host_allocator.h"

namespace tuneledger::train {
namespace {

// After KeepHostBuffersForReuse, a 64 MiB buffer (an activation of a CPU step) comes from the
// heap, not from a fresh mmap, and freeing it keeps it in the process for the next one. glibc's
// defaults would mmap it (its threshold is at most 32 MiB) and unmap it on free.
TEST(HostAllocatorTest, LargeBuffersComeFromTheHeapAndStayForReuse) {
  ASSERT_TRUE(KeepHostBuffersForReuse());
  constexpr size_t kBytes = size_t{64} << 20;
  const size_t mmapped_before = mallinfo2().hblkhd;
  void* buffer = std::malloc(kBytes);
  ASSERT_NE(buffer, nullptr);
  std::memset(buffer, 1, kBytes);  // touched, as a tensor's pages are
  EXPECT_LT(mallinfo2().hblkhd, mmapped_before + kBytes) << "served by mmap";
  std::free(buffer);
  EXPECT_GE(mallinfo2().fordblks, kBytes) << "given back to the kernel on free";
}

}  // namespace
}  // namespace tuneledger::train
