// CUDA kernels of the selective scan: one thread per (batch, channel), sequential over L with the
// N states in registers, as the CPU kernels. N = 16 (every Vim) is a compile-time constant so that
// the state loops unroll and the states stay in registers; other N index a local array. The backward pass
// keeps the forward states in a scratch buffer and writes each thread's share of the shared gradients
// (B, C: summed over a group's channels; A, D, delta_bias: over the batch) to scratch that the caller
// reduces with fixed-order tensor sums: no atomics, so results are the same bits on every run.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>
#include <type_traits>

#include "src/ops/selective_scan_cuda_kernels.h"

namespace vimvq::ops::cuda {
namespace {

constexpr int kMaxState = 64;  // the bound check_selective_scan_inputs enforces
constexpr int kThreads = 128;
constexpr int kCommonState = 16;

// kFixedN > 0: the state count is known at compile time; 0: it is s.n_state (at most kMaxState).
template <int kFixedN>
__device__ __forceinline__ int state_count(const ScanDims& s) {
  return kFixedN > 0 ? kFixedN : static_cast<int>(s.n_state);
}

// Per-step scratch (states, dB and dC shares) is (batch, L, N, dim): neighbouring threads are
// neighbouring channels, so their reads and writes coalesce. Offset of (b, t, n = 0, d).
__device__ __forceinline__ int64_t state_offset(const ScanDims& s, int64_t b, int64_t t, int64_t d) {
  return (b * s.length + t) * s.n_state * s.dim + d;
}

template <typename T>
__device__ T softplus(T x) {
  return x > T(20) ? x : log1p(exp(x));
}

template <typename T>
__device__ T sigmoid(T x) {
  return T(1) / (T(1) + exp(-x));
}

template <typename T, int kFixedN>
__global__ void forward_kernel(ScanDims s, const T* u, const T* delta, const T* A, const T* B, const T* C,
                               const T* D, const T* z, const T* bias, T* out, T* states) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= s.batch * s.dim) return;
  const int64_t b = i / s.dim, d = i % s.dim, L = s.length;
  const int N = state_count<kFixedN>(s);
  const int64_t g = d / (s.dim / s.groups);
  const T* bt = B + (b * s.groups + g) * L * N;
  const T* ct = C + (b * s.groups + g) * L * N;
  const T* a = A + d * N;
  const int64_t row = i * L;
  T h[kFixedN > 0 ? kFixedN : kMaxState];
#pragma unroll
  for (int n = 0; n < N; ++n) h[n] = T(0);
  for (int64_t t = 0; t < L; ++t) {
    const T dt = softplus(delta[row + t] + bias[d]);
    const T ut = u[row + t];
    T y = T(0);
#pragma unroll
    for (int n = 0; n < N; ++n) {
      h[n] = exp(dt * a[n]) * h[n] + dt * ut * bt[t * N + n];
      y += h[n] * ct[t * N + n];
    }
    if (states != nullptr) {
      T* st = states + state_offset(s, b, t, d);
#pragma unroll
      for (int n = 0; n < N; ++n) st[n * s.dim] = h[n];
    }
    if (out != nullptr) {
      const T zt = z[row + t];
      out[row + t] = (y + D[d] * ut) * zt * sigmoid(zt);
    }
  }
}

template <typename T, int kFixedN>
__global__ void backward_kernel(ScanDims s, const T* grad, const T* u, const T* delta, const T* A, const T* B,
                                const T* C, const T* D, const T* z, const T* bias, const T* states, T* du,
                                T* ddelta, T* dz, BackwardShares<T> shares) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= s.batch * s.dim) return;
  const int64_t b = i / s.dim, d = i % s.dim, L = s.length;
  const int N = state_count<kFixedN>(s);
  const int64_t g = d / (s.dim / s.groups);
  const int64_t bg = (b * s.groups + g) * L * N;
  const T* a = A + d * N;
  const int64_t row = i * L;
  T dh_next[kFixedN > 0 ? kFixedN : kMaxState], dA_acc[kFixedN > 0 ? kFixedN : kMaxState];
#pragma unroll
  for (int n = 0; n < N; ++n) dh_next[n] = dA_acc[n] = T(0);
  T dD_acc = T(0), dbias_acc = T(0);
  for (int64_t t = L - 1; t >= 0; --t) {
    const T zt = z[row + t], ut = u[row + t];
    const T sig = sigmoid(zt);
    const int64_t at_t = state_offset(s, b, t, d);  // of (b, t, n = 0, d); n steps by s.dim
    const T* h = states + at_t;
    const T* h_prev = t > 0 ? h - N * s.dim : nullptr;
    T y = T(0);
#pragma unroll
    for (int n = 0; n < N; ++n) y += h[n * s.dim] * C[bg + t * N + n];
    y += D[d] * ut;
    const T go = grad[row + t];
    dz[row + t] = go * y * sig * (T(1) + zt * (T(1) - sig));
    const T dy = go * zt * sig;
    dD_acc += dy * ut;
    const T x = delta[row + t] + bias[d];
    const T dt = softplus(x);
    T ddt = T(0), du_t = dy * D[d];
#pragma unroll
    for (int n = 0; n < N; ++n) {
      const T bn = B[bg + t * N + n], cn = C[bg + t * N + n];
      const T hp = h_prev != nullptr ? h_prev[n * s.dim] : T(0);
      const T dh = dy * cn + dh_next[n];
      const T decay = exp(dt * a[n]);
      shares.dC[at_t + n * s.dim] = dy * h[n * s.dim];
      shares.dB[at_t + n * s.dim] = dh * dt * ut;
      ddt += dh * (decay * a[n] * hp + bn * ut);
      dA_acc[n] += dh * decay * dt * hp;
      du_t += dh * dt * bn;
      dh_next[n] = dh * decay;
    }
    const T dx = x > T(20) ? ddt : ddt * sigmoid(x);
    ddelta[row + t] = dx;
    dbias_acc += dx;
    du[row + t] = du_t;
  }
#pragma unroll
  for (int n = 0; n < N; ++n) shares.dA[(b * N + n) * s.dim + d] = dA_acc[n];
  shares.dD[i] = dD_acc;
  shares.dbias[i] = dbias_acc;
}

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess)
    throw std::runtime_error(std::string("selective_scan CUDA ") + what + ": " + cudaGetErrorString(e));
}

// Calls f with std::integral_constant<int, kFixedN>: the kernel instance for this state count.
template <typename F>
void with_state_count(const ScanDims& s, F&& f) {
  if (s.n_state == kCommonState)
    f(std::integral_constant<int, kCommonState>{});
  else
    f(std::integral_constant<int, 0>{});
}

int blocks_for(const ScanDims& s) { return static_cast<int>((s.batch * s.dim + kThreads - 1) / kThreads); }

}  // namespace

template <typename T>
void scan_forward(const ScanDims& s, const T* u, const T* delta, const T* A, const T* B, const T* C,
                  const T* D, const T* z, const T* bias, T* out, void* stream) {
  if (s.batch * s.dim == 0) return;
  auto st = static_cast<cudaStream_t>(stream);
  with_state_count(s, [&](auto fixed_n) {
    constexpr int kN = decltype(fixed_n)::value;
    forward_kernel<T, kN><<<blocks_for(s), kThreads, 0, st>>>(s, u, delta, A, B, C, D, z, bias, out, nullptr);
    check(cudaGetLastError(), "forward launch");
  });
}

template <typename T>
void scan_backward(const ScanDims& s, const T* grad, const T* u, const T* delta, const T* A, const T* B,
                   const T* C, const T* D, const T* z, const T* bias, T* states, T* du, T* ddelta, T* dz,
                   const BackwardShares<T>& shares, void* stream) {
  if (s.batch * s.dim == 0) return;
  auto st = static_cast<cudaStream_t>(stream);
  with_state_count(s, [&](auto fixed_n) {
    constexpr int kN = decltype(fixed_n)::value;
    forward_kernel<T, kN>
        <<<blocks_for(s), kThreads, 0, st>>>(s, u, delta, A, B, C, D, z, bias, nullptr, states);
    check(cudaGetLastError(), "state recompute launch");
    backward_kernel<T, kN><<<blocks_for(s), kThreads, 0, st>>>(s, grad, u, delta, A, B, C, D, z, bias, states,
                                                               du, ddelta, dz, shares);
    check(cudaGetLastError(), "backward launch");
  });
}

#define VIMVQ_INSTANTIATE(T)                                                                                 \
  template void scan_forward<T>(const ScanDims&, const T*, const T*, const T*, const T*, const T*, const T*, \
                                const T*, const T*, T*, void*);                                              \
  template void scan_backward<T>(const ScanDims&, const T*, const T*, const T*, const T*, const T*,          \
                                 const T*, const T*, const T*, const T*, T*, T*, T*, T*,                     \
                                 const BackwardShares<T>&, void*);
VIMVQ_INSTANTIATE(float)
VIMVQ_INSTANTIATE(double)
#undef VIMVQ_INSTANTIATE

}  // namespace vimvq::ops::cuda
