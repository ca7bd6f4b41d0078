// CpuBlockCache: large blocks come back for the same size, the cap holds, small blocks and the raw
// interface pass through, and tensors on cached blocks keep their values.
#include <ATen/ATen.h>
#include <c10/core/CPUAllocator.h>
#include <gtest/gtest.h>

#include <cstring>

#include "vimvq/util/cpu_block_cache.h"

namespace vimvq::util {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

CpuBlockCacheOptions small_thresholds(size_t max_cached_mib) {
  CpuBlockCacheOptions o;
  o.min_block_bytes = kMiB;
  o.max_cached_bytes = max_cached_mib * kMiB;
  return o;
}

TEST(CpuBlockCache, AFreedLargeBlockServesTheNextRequestOfItsSize) {
  CpuBlockCache cache(small_thresholds(16));
  void* first = nullptr;
  {
    c10::DataPtr a = cache.allocate(3 * kMiB);
    first = a.get();
    std::memset(first, 7, 3 * kMiB);
  }
  EXPECT_EQ(cache.stats().cached_bytes, 3 * kMiB);
  c10::DataPtr other_size = cache.allocate(2 * kMiB);
  EXPECT_NE(other_size.get(), first);
  c10::DataPtr same_size = cache.allocate(3 * kMiB);
  EXPECT_EQ(same_size.get(), first);
  const CpuBlockCacheStats s = cache.stats();
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.misses, 2u);
  EXPECT_EQ(s.cached_bytes, 0u);
}

TEST(CpuBlockCache, KeepsNoMoreThanItsCapAndDropsTheOldestFirst) {
  CpuBlockCache cache(small_thresholds(5));
  {
    c10::DataPtr a = cache.allocate(2 * kMiB);
    c10::DataPtr b = cache.allocate(2 * kMiB + 1);
    c10::DataPtr c = cache.allocate(2 * kMiB + 2);
    a.clear();  // freed first: the oldest in the cache
  }
  CpuBlockCacheStats s = cache.stats();
  EXPECT_EQ(s.cached_bytes, 4 * kMiB + 3);  // the three blocks are 6 MiB; the cap is 5
  EXPECT_EQ(s.evicted_blocks, 1u);
  c10::DataPtr again = cache.allocate(2 * kMiB);
  EXPECT_EQ(cache.stats().hits, 0u) << "the oldest block was returned to the system";
  c10::DataPtr too_big = cache.allocate(6 * kMiB);  // over the cap: never kept
  too_big.clear();
  EXPECT_EQ(cache.stats().cached_bytes, 4 * kMiB + 3);
  cache.release_cached();
  EXPECT_EQ(cache.stats().cached_bytes, 0u);
}

TEST(CpuBlockCache, SmallBlocksAndTheRawInterfacePassThrough) {
  CpuBlockCache cache(small_thresholds(16));
  void* raw_small = cache.raw_allocate(100);
  void* raw_large = cache.raw_allocate(2 * kMiB);
  ASSERT_NE(raw_small, nullptr);
  ASSERT_NE(raw_large, nullptr);
  cache.raw_deallocate(raw_small);
  cache.raw_deallocate(raw_large);
  const CpuBlockCacheStats s = cache.stats();
  EXPECT_EQ(s.misses, 1u) << "only the large block counts";
  EXPECT_EQ(s.cached_bytes, 2 * kMiB);
  EXPECT_EQ(cache.raw_allocate(2 * kMiB), raw_large);
  cache.raw_deallocate(raw_large);
}

TEST(CpuBlockCache, TensorsOnReusedBlocksComputeAsUsual) {
  install_cpu_block_cache(small_thresholds(64));
  const CpuBlockCache* cache = installed_cpu_block_cache();
  ASSERT_NE(cache, nullptr);
  EXPECT_EQ(c10::GetCPUAllocator(), cache);
  const size_t hits_before = cache->stats().hits;
  const at::Tensor x = at::arange(1 << 19, at::kFloat);  // 2 MiB
  at::Tensor sum;
  for (int i = 0; i < 3; ++i) {
    const at::Tensor y = x * 2 + 1;  // a 2 MiB result, freed at the end of each iteration
    sum = i == 0 ? y.sum() : sum + y.sum();
    EXPECT_EQ(y[12345].item<float>(), 2 * 12345 + 1);
  }
  EXPECT_GE(cache->stats().hits, hits_before + 2);
  EXPECT_DOUBLE_EQ(sum.item<double>(),
                   3 * at::arange(1 << 19, at::kDouble).mul(2).add(1).sum().item<double>());
}

}  // namespace
}  // namespace vimvq::util
