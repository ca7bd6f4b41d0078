// Launchers of the CUDA selective-scan kernels. Plain pointers only, so that nvcc never compiles
// LibTorch headers; src/ops/selective_scan_cuda.cpp wraps them as the CUDA kernels of
// torch.ops.vimvq.selective_scan. Layouts as in the CPU kernels: u, delta, z (B, D, L); A (D, N);
// B and C time-major (B, G, L, N); D and delta_bias (D).
#pragma once

#include <cstdint>

namespace vimvq::ops::cuda {

struct ScanDims {
  int64_t batch, dim, length, n_state, groups;
};

template <typename T>
void scan_forward(const ScanDims& s, const T* u, const T* delta, const T* A, const T* B, const T* C,
                  const T* D, const T* z, const T* bias, T* out, void* stream);

// Per-thread shares of the gradients of the inputs that threads share, reduced by the caller:
// dB, dC (batch, L, N, dim) summed over each group's channels; dA (batch, N, dim), dD and dbias
// (batch, dim) summed over the batch. Channel-minor, so that the writes coalesce.
template <typename T>
struct BackwardShares {
  T* dB;
  T* dC;
  T* dA;
  T* dD;
  T* dbias;
};

// states: scratch (batch, L, N, dim) for the forward states, kept for the reverse pass.
template <typename T>
void scan_backward(const ScanDims& s, const T* grad, const T* u, const T* delta, const T* A, const T* B,
                   const T* C, const T* D, const T* z, const T* bias, T* states, T* du, T* ddelta, T* dz,
                   const BackwardShares<T>& shares, void* stream);

}  // namespace vimvq::ops::cuda
