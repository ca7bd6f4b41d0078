// A CPU allocator that keeps large freed blocks for the next request of the same size.
//
// A calibration step allocates and frees the same activations every time. glibc serves blocks
// above its mmap threshold (32 MiB at most) with fresh mappings, so at Vim-S/B widths each step
// took its big activations back from the kernel as page faults and zeroed pages. Smaller blocks
// are allocated and freed as LibTorch's default CPU allocator does (c10::alloc_cpu, free_cpu).
// Nothing here touches tensor values.
#pragma once

#include <c10/core/Allocator.h>

#include <cstddef>
#include <list>
#include <map>
#include <mutex>
#include <unordered_map>

namespace vimvq::util {

struct CpuBlockCacheOptions {
  size_t min_block_bytes = size_t{32} << 20;  // smaller blocks are never cached
  // Freed bytes kept for reuse; the oldest go first. 768 MiB kept a vim_base step as fast as 1 GiB
  // did, and its peak under 4 GB (docs/BENCHMARKS.md, "Scale").
  size_t max_cached_bytes = size_t{768} << 20;
};

struct CpuBlockCacheStats {
  size_t hits = 0, misses = 0;  // large requests served from the cache / by a new block
  size_t cached_bytes = 0;      // freed and kept now
  size_t evicted_blocks = 0;    // returned to the system to stay under max_cached_bytes
};

class CpuBlockCache final : public c10::Allocator {
 public:
  explicit CpuBlockCache(CpuBlockCacheOptions options);
  ~CpuBlockCache() override;
  CpuBlockCache(const CpuBlockCache&) = delete;
  CpuBlockCache& operator=(const CpuBlockCache&) = delete;

  c10::DataPtr allocate(size_t bytes) override;
  void copy_data(void* dest, const void* src, size_t count) const override;
  // Every block has the same deleter (LibTorch's raw_allocate/raw_deallocate rely on it).
  c10::DeleterFnPtr raw_deleter() const override { return &CpuBlockCache::release; }

  CpuBlockCacheStats stats() const;
  // Returns every cached block to the system.
  void release_cached();

 private:
  struct Cached {
    void* block;
    size_t bytes;
  };
  static void release(void* block);  // finds the cache that owns a large block, else frees it
  bool take_back(void* block);       // false: not one of this cache's blocks
  size_t evict_to(size_t limit);     // caller holds mutex_; returns the blocks freed

  CpuBlockCacheOptions options_;
  mutable std::mutex mutex_;
  std::unordered_map<void*, size_t> live_;  // large blocks in use, and their sizes
  std::list<Cached> freed_;                 // cached blocks, oldest first
  std::multimap<size_t, std::list<Cached>::iterator> by_size_;
  CpuBlockCacheStats stats_;
};

// Makes a process-wide CpuBlockCache LibTorch's CPU allocator (over the current one). It is never
// destroyed: tensors may be freed after main returns. Later calls change nothing.
void install_cpu_block_cache(const CpuBlockCacheOptions& options = {});
// The installed cache, or null.
const CpuBlockCache* installed_cpu_block_cache();
// Empties the installed cache (nothing when none is installed).
void release_cpu_block_cache();

}  // namespace vimvq::util
