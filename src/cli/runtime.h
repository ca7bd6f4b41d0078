// Shared set-up for subcommands: thread count, device selection, how freed memory is kept.
#pragma once

#include <c10/core/Device.h>

#include <string>

namespace vimvq::cli {

// Sets LibTorch's intra-op threads (it defaults to one here) and keeps a pthreads OpenBLAS pool
// from competing with them; returns the count used.
int configure_threads(int requested);

// Returns freed memory to the system: every block of 256 KiB and more is mapped on its own and
// unmapped when freed, and the heap is trimmed above 256 KiB. The process starts so. Loading a model
// (its archive, its first forward) frees far more than it keeps, and under glibc's sliding
// thresholds that memory stayed resident: it was most of `vimvq eval`'s peak above the process's
// floor (docs/BENCHMARKS.md, "Compressed inference").
void return_freed_memory();

// For the compute that follows a load: trims what is free now, then keeps freed tensor memory in
// the heap instead of unmapping it. A calibration step allocates and frees the same large
// activations hundreds of times, and mapping each anew turned them into fresh page faults
// (docs/BENCHMARKS.md, "Scale"). Blocks of 32 MiB and more go through util::CpuBlockCache
// (VIMVQ_CPU_CACHE_MB: how much it keeps, 0: off). Throws vimvq::Error for a malformed
// VIMVQ_CPU_CACHE_MB.
void keep_freed_memory_mapped();

// TorchScript's graph executor profiles a model's first runs and keeps specialised, optimised copies
// of its graphs. For inference they bought nothing here (`vimvq eval` at the same images/s, fp32
// and compressed, side by side) and cost about 28 MB of its peak on vim_base (docs/BENCHMARKS.md,
// "Compressed inference"). Process-wide: for the commands that only run forwards.
void run_graphs_unoptimized();

// How the CPU block cache (keep_freed_memory_mapped) has served this process so far.
std::string cpu_block_cache_summary();

// "cpu", "cuda", "cuda:N"; throws vimvq::Error for an unknown or unavailable device.
c10::Device parse_device(const std::string& name);

}  // namespace vimvq::cli
