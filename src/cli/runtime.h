// Shared set-up for subcommands: thread count, device selection.
#pragma once

#include <c10/core/Device.h>

#include <string>

namespace vimvq::cli {

// Sets LibTorch's intra-op threads (it defaults to one here) and keeps a pthreads OpenBLAS pool
// from competing with them; returns the count used.
int configure_threads(int requested);

// How the CPU block cache (commands.h, keep_freed_memory_mapped) has served this process so far.
std::string cpu_block_cache_summary();

// "cpu", "cuda", "cuda:N"; throws vimvq::Error for an unknown or unavailable device.
c10::Device parse_device(const std::string& name);

}  // namespace vimvq::cli
