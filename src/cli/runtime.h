// Shared set-up for subcommands: thread count, device selection.
#pragma once

#include <c10/core/Device.h>

#include <string>

namespace vimvq::cli {

// Sets LibTorch's intra-op threads (it defaults to one here) and keeps a pthreads OpenBLAS pool
// from competing with them; returns the count used.
int configure_threads(int requested);

// TorchScript's graph executor profiles a model's first runs and keeps specialised, optimised copies
// of its graphs. For inference they bought nothing here (`vimvq eval` at the same images/s, fp32
// and compressed, side by side) and cost about 28 MB of its peak on vim_base (docs/BENCHMARKS.md,
// "Compressed inference"). Process-wide: for the commands that only run forwards.
void run_graphs_unoptimized();

// How the CPU block cache (commands.h, keep_freed_memory_mapped) has served this process so far.
std::string cpu_block_cache_summary();

// "cpu", "cuda", "cuda:N"; throws vimvq::Error for an unknown or unavailable device.
c10::Device parse_device(const std::string& name);

}  // namespace vimvq::cli
