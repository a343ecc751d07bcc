#include "model/cpu_allocator.h"

#include <c10/core/CPUAllocator.h>
#include <gtest/gtest.h>
#include <torch/types.h>

#include <cstdint>

namespace segserve {
namespace {

// One process-wide allocator: the tests run in order in this binary.
class CachingCpuAllocatorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { InstallCachingCpuAllocator(); }
};

TEST_F(CachingCpuAllocatorTest, FreedLargeBlocksAreReused) {
  void* first = nullptr;
  {
    const torch::Tensor big = torch::empty({1 << 20});  // 4 MiB.
    first = big.data_ptr();
    EXPECT_EQ(reinterpret_cast<uintptr_t>(first) % 64, 0u);
  }
  const CachingCpuAllocatorStats before = GetCachingCpuAllocatorStats();
  EXPECT_GE(before.cached_bytes, 4 << 20);
  // A slightly smaller request rounds to the same block.
  const torch::Tensor again = torch::empty({(1 << 20) - 100});
  EXPECT_EQ(again.data_ptr(), first);
  const CachingCpuAllocatorStats after = GetCachingCpuAllocatorStats();
  EXPECT_EQ(after.hits, before.hits + 1);
  EXPECT_EQ(after.cached_bytes, before.cached_bytes - (4 << 20));
}

// Mid-sized activations (SGCPNet's at 512x512 are mostly 64 KiB - 1 MiB) are
// cached too: freed to glibc from a thread's arena, they came back as fresh,
// page-faulting memory on every batch.
TEST_F(CachingCpuAllocatorTest, FreedMidSizedBlocksAreReused) {
  void* first = nullptr;
  {
    const torch::Tensor mid = torch::empty({64 << 10});  // 256 KiB.
    first = mid.data_ptr();
  }
  const CachingCpuAllocatorStats before = GetCachingCpuAllocatorStats();
  const torch::Tensor again = torch::empty({64 << 10});
  EXPECT_EQ(again.data_ptr(), first);
  EXPECT_EQ(GetCachingCpuAllocatorStats().hits, before.hits + 1);
}

TEST_F(CachingCpuAllocatorTest, TensorsWorkAndSmallBlocksAreNotCached) {
  const CachingCpuAllocatorStats before = GetCachingCpuAllocatorStats();
  {
    const torch::Tensor small = torch::arange(1000, torch::kFloat);
    EXPECT_FLOAT_EQ(small.sum().item<float>(), 999 * 1000 / 2);
  }
  const CachingCpuAllocatorStats after = GetCachingCpuAllocatorStats();
  EXPECT_EQ(after.cached_bytes, before.cached_bytes);
  EXPECT_EQ(after.hits + after.misses, before.hits + before.misses);
}

// LibTorch itself uses raw_allocate / raw_deallocate on the CPU allocator.
TEST_F(CachingCpuAllocatorTest, RawAllocationsRoundTrip) {
  c10::Allocator* allocator = c10::GetCPUAllocator();
  for (size_t bytes : {size_t{16}, size_t{3} << 20}) {
    void* data = allocator->raw_allocate(bytes);
    ASSERT_NE(data, nullptr);
    static_cast<char*>(data)[bytes - 1] = 1;
    allocator->raw_deallocate(data);
  }
}

TEST_F(CachingCpuAllocatorTest, OldBlocksMakeRoomForNewOnes) {
  InstallCachingCpuAllocator(int64_t{8} << 20);
  { const torch::Tensor old_size = torch::empty({(1 << 20) + (1 << 19)}); }
  { const torch::Tensor old_size = torch::empty({(1 << 20) + (1 << 19)}); }
  // 6 MiB cached; a freed 4 MiB block evicts the 6 MiB one and stays.
  void* data = nullptr;
  {
    const torch::Tensor new_size = torch::empty({1 << 20});
    data = new_size.data_ptr();
  }
  EXPECT_LE(GetCachingCpuAllocatorStats().cached_bytes, int64_t{8} << 20);
  const torch::Tensor again = torch::empty({1 << 20});
  EXPECT_EQ(again.data_ptr(), data);
  InstallCachingCpuAllocator();
}

TEST_F(CachingCpuAllocatorTest, CapLimitsTheCache) {
  InstallCachingCpuAllocator(0);
  // Drain what earlier tests cached by taking it back out.
  { const torch::Tensor drain = torch::empty({1 << 20}); }
  const int64_t cached = GetCachingCpuAllocatorStats().cached_bytes;
  { const torch::Tensor big = torch::empty({1 << 21}); }
  EXPECT_EQ(GetCachingCpuAllocatorStats().cached_bytes, cached);
  InstallCachingCpuAllocator();
}

}  // namespace
}  // namespace segserve
