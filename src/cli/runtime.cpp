#include "src/cli/runtime.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <malloc.h>
#include <torch/csrc/jit/runtime/graph_executor.h>

#include <cstdlib>
#include <string>
#include <thread>

#include "vimvq/util/cpu_block_cache.h"
#include "vimvq/util/error.h"
#include "vimvq/util/strprintf.h"

namespace vimvq::cli {
namespace {

// Debian's LibTorch calls OpenBLAS. When OpenBLAS was built with its own pthreads pool, those
// threads spin between calls on the same cores as LibTorch's OpenMP workers, and each pool waits
// on the other. Measured on 2 cores: `vimvq eval` 197 -> 330 img/s, quantize 1.7x faster with that
// pool at one thread. The parallel work stays with LibTorch's threads. An OpenMP build of OpenBLAS
// shares LibTorch's pool and is left alone. Looked up at run time: no link dependency on OpenBLAS.
void keep_openblas_pool_off_torch_threads() {
  using GetParallel = int (*)();
  using SetThreads = void (*)(int);
  const auto get_parallel = reinterpret_cast<GetParallel>(dlsym(RTLD_DEFAULT, "openblas_get_parallel"));
  const auto set_threads = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  constexpr int kOpenBlasPthreads = 1;
  if (get_parallel != nullptr && set_threads != nullptr && get_parallel() == kOpenBlasPthreads)
    set_threads(1);
}

}  // namespace

int configure_threads(int requested) {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // Far more threads than cores only thrash (1000 made eval hang): a typo, refused.
  const int most = std::max(8, 4 * cores);
  if (requested < 0 || requested > most) {
    throw Error("--threads " + std::to_string(requested) + ": expected 0 (all cores) to " +
                std::to_string(most) + " on this machine (" + std::to_string(cores) + " cores)");
  }
  const int n = requested > 0 ? requested : cores;
  at::set_num_threads(n);
  keep_openblas_pool_off_torch_threads();
  return n;
}

void return_freed_memory() {
  // Fixed thresholds: glibc's sliding ones rise to the largest block freed so far.
  constexpr int kOwnMappingBytes = 256 << 10;
  ::mallopt(M_MMAP_THRESHOLD, kOwnMappingBytes);
  ::mallopt(M_TRIM_THRESHOLD, kOwnMappingBytes);
}

void run_graphs_unoptimized() { torch::jit::setGraphExecutorOptimize(false); }

void keep_freed_memory_mapped() {
  util::CpuBlockCacheOptions cache;
  if (const char* text = std::getenv("VIMVQ_CPU_CACHE_MB")) {
    char* end = nullptr;
    const unsigned long long mb = std::strtoull(text, &end, 10);
    if (*text == '\0' || *end != '\0' || mb > (size_t{1} << 24))
      throw Error(std::string("VIMVQ_CPU_CACHE_MB='") + text +
                  "': expected MiB of freed blocks to keep, 0 to 16777216");
    cache.max_cached_bytes = static_cast<size_t>(mb) << 20;
  }
  ::malloc_trim(0);                       // what loading freed goes back before the heap stops shrinking
  ::mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's maximum: larger blocks are still mapped
  ::mallopt(M_TRIM_THRESHOLD, 256 << 20);
  // The blocks glibc still maps (activations at Vim-S/B widths; the cache's default threshold is
  // the 32 MiB above) are reused instead of faulted in again.
  if (cache.max_cached_bytes > 0) util::install_cpu_block_cache(cache);
}

std::string cpu_block_cache_summary() {
  const util::CpuBlockCache* cache = util::installed_cpu_block_cache();
  if (cache == nullptr) return "CPU block cache: off";
  const util::CpuBlockCacheStats s = cache->stats();
  return strprintf("CPU block cache: %zu blocks reused, %zu allocated, %zu evicted, %.0f MiB kept", s.hits,
                   s.misses, s.evicted_blocks, s.cached_bytes / 1048576.0);
}

c10::Device parse_device(const std::string& name) {
  if (name != "cpu" && name.rfind("cuda", 0) != 0) {
    throw Error("--device '" + name + "': unknown device (use cpu, cuda or cuda:N)");
  }
  c10::Device device("cpu");
  try {
    device = c10::Device(name);
  } catch (const c10::Error&) {
    throw Error("--device '" + name + "': unknown device (use cpu, cuda or cuda:N)");
  }
  if (device.is_cuda() && !at::hasCUDA()) {
    throw Error("--device " + name +
                ": this vimvq's LibTorch has no CUDA support or no CUDA device is visible");
  }
  return device;
}

}  // namespace vimvq::cli
