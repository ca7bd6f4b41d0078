#include "vimvq/util/cpu_block_cache.h"

#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>

#include <array>
#include <atomic>
#include <cstring>
#include <new>
#include <stdexcept>

namespace vimvq::util {
namespace {

// The caches alive in the process, so that the deleter (which gets only the block) finds its
// owner. Trivially destructible on purpose: blocks may be freed while static objects are torn down.
constexpr size_t kMaxCaches = 8;
std::array<std::atomic<CpuBlockCache*>, kMaxCaches> g_caches{};

}  // namespace

CpuBlockCache::CpuBlockCache(CpuBlockCacheOptions options) : options_(options) {
  for (auto& slot : g_caches) {
    CpuBlockCache* empty = nullptr;
    if (slot.compare_exchange_strong(empty, this)) return;
  }
  throw std::runtime_error("CpuBlockCache: more than 8 caches alive");
}

CpuBlockCache::~CpuBlockCache() {
  release_cached();
  for (auto& slot : g_caches) {
    CpuBlockCache* self = this;
    slot.compare_exchange_strong(self, nullptr);
  }
}

c10::DataPtr CpuBlockCache::allocate(size_t bytes) {
  const c10::Device cpu(c10::DeviceType::CPU);
  if (bytes < options_.min_block_bytes) {
    void* small = c10::alloc_cpu(bytes);
    return {small, small, &CpuBlockCache::release, cpu};
  }
  void* block = nullptr;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto hit = by_size_.find(bytes);
    if (hit != by_size_.end()) {
      block = hit->second->block;
      freed_.erase(hit->second);
      by_size_.erase(hit);
      stats_.cached_bytes -= bytes;
      ++stats_.hits;
    } else {
      ++stats_.misses;
    }
  }
  if (block == nullptr) block = c10::alloc_cpu(bytes);  // throws on failure, like the default
  {
    std::lock_guard<std::mutex> lock(mutex_);
    live_.emplace(block, bytes);
  }
  return {block, block, &CpuBlockCache::release, cpu};
}

void CpuBlockCache::copy_data(void* dest, const void* src, size_t count) const {
  std::memcpy(dest, src, count);
}

void CpuBlockCache::release(void* block) {
  if (block == nullptr) return;
  for (auto& slot : g_caches) {
    CpuBlockCache* cache = slot.load();
    if (cache != nullptr && cache->take_back(block)) return;
  }
  c10::free_cpu(block);  // a small block, or one the default allocator made before us
}

bool CpuBlockCache::take_back(void* block) {
  std::lock_guard<std::mutex> lock(mutex_);
  const auto live = live_.find(block);
  if (live == live_.end()) return false;
  const size_t bytes = live->second;
  live_.erase(live);
  if (bytes > options_.max_cached_bytes) {
    c10::free_cpu(block);
    ++stats_.evicted_blocks;
    return true;
  }
  stats_.evicted_blocks += evict_to(options_.max_cached_bytes - bytes);
  freed_.push_back({block, bytes});
  by_size_.emplace(bytes, std::prev(freed_.end()));
  stats_.cached_bytes += bytes;
  return true;
}

size_t CpuBlockCache::evict_to(size_t limit) {
  size_t freed = 0;
  while (stats_.cached_bytes > limit && !freed_.empty()) {
    const Cached oldest = freed_.front();
    auto [first, last] = by_size_.equal_range(oldest.bytes);
    for (auto it = first; it != last; ++it) {
      if (it->second == freed_.begin()) {
        by_size_.erase(it);
        break;
      }
    }
    freed_.pop_front();
    stats_.cached_bytes -= oldest.bytes;
    c10::free_cpu(oldest.block);
    ++freed;
  }
  return freed;
}

CpuBlockCacheStats CpuBlockCache::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

void CpuBlockCache::release_cached() {
  std::lock_guard<std::mutex> lock(mutex_);
  evict_to(0);  // a deliberate release: not counted as evictions
}

namespace {
std::atomic<CpuBlockCache*> g_installed{nullptr};
}  // namespace

void install_cpu_block_cache(const CpuBlockCacheOptions& options) {
  // Constructed in static storage and never destroyed (see the header).
  alignas(CpuBlockCache) static unsigned char storage[sizeof(CpuBlockCache)];
  static CpuBlockCache* const cache = new (storage) CpuBlockCache(options);
  c10::SetCPUAllocator(cache, /*priority=*/1);
  g_installed = cache;
}

const CpuBlockCache* installed_cpu_block_cache() { return g_installed; }

void release_cpu_block_cache() {
  if (CpuBlockCache* cache = g_installed) cache->release_cached();
}

}  // namespace vimvq::util
