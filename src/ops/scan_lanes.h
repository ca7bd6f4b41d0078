// The lane core shared by the CPU scan kernels (selective_scan_cpu.cpp: channel-major, one
// direction per group; bimamba_scan_cpu.cpp: token-major, both directions of a bimamba-v2 mixer).
// A work item is kLanes channels that share B_t and C_t, one channel per vector lane: a step is N
// vector exps and FMAs across lanes with no horizontal sums in the forward. The layouts differ only
// in how an item's rows are read into the (L, lanes) scratch and written back; everything between
// works in "scan time" (step 0 first), whatever the direction.
// Include only from files built with -O3 -ffast-math (GCC then vectorizes exp, log1p and the
// sigmoid via libmvec).
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "src/ops/batch_shares.h"

namespace vimvq::ops::lanes {

constexpr int64_t kMaxState = 64;

// The item boundaries are fixed (not derived from the thread count), so the order of every
// floating-point sum, hence the result, is the same for any number of threads.
constexpr int64_t kLanes = 16;

// The state size the models use (Vim: N = 16). Kernels take N as a template argument, 0 meaning
// "from the call": at a fixed N the compiler unrolls the state loop and keeps the N state vectors
// in registers instead of reloading them from the stack at every step.
constexpr int64_t kCommonState = 16;

template <typename T>
inline T softplus(T x) {
  return x > T(20) ? x : std::log1p(std::exp(x));
}

template <typename T>
inline T sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}

// exp for the recurrence's decays, inlined so that the lane loop stays in vector registers
// (a libmvec call spills the N states around every call). Range reduction by ln 2 in two parts,
// then Cephes expf's polynomial on [-ln2/2, ln2/2]: relative error ~2e-7, like expf. Arguments
// are clamped to [-87, 88]: below, the result is ~1e-38 instead of 0 (a decay that has already
// forgotten the state).
inline float decay_exp(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  const float n = std::floor(x * 1.44269504088896341f + 0.5f);
  float r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}
inline double decay_exp(double x) { return std::exp(x); }

template <int64_t kN>
inline int64_t state_size(int64_t n_state) {
  return kN > 0 ? kN : n_state;
}

template <typename T>
struct LaneScratch {
  LaneScratch(int64_t length, int64_t n_state, bool backward)
      : dt(length * kLanes), u(length * kLanes), gate(length * kLanes), y(length * kLanes) {
    if (!backward) return;
    for (auto* v : {&dsoftplus, &dgate, &grad, &du, &ddelta, &dz}) v->resize(length * kLanes);
    for (auto* v : {&states, &decays, &dB, &dC}) v->resize(length * n_state * kLanes);
  }
  std::vector<T> dt, u, gate, y;  // (L, lanes); y: the pre-gate output sum_n h C + D u
  std::vector<T> dsoftplus, dgate, grad, du, ddelta, dz;  // backward only, (L, lanes)
  // Backward only, (L, N, lanes): the states and their decays exp(dt A) from the recomputed
  // recurrence, and the lanes' shares of dB and dC, summed over a (batch, group)'s lane chunks
  // before the one sum over lanes.
  std::vector<T> states, decays, dB, dC;
};

// One work item's per-channel parameters laid out by lane, and its B and C: row t of scan time is
// bt + t * bc_step (N values), so a reversed direction reads its time-major rows backwards.
template <typename T>
struct LaneItem {
  int64_t count;  // channels in use; spare lanes repeat the last one
  T a[kMaxState][kLanes];
  T d_skip[kLanes];
  T bias[kLanes];
  const T *bt, *ct;
  int64_t bc_step;
};

// The lane parameters of channels first .. first + count - 1 (spare lanes repeat the last).
template <typename T>
void load_lane_params(int64_t n_state, int64_t first, const T* A, const T* D, const T* bias,
                      LaneItem<T>& item) {
  for (int64_t l = 0; l < kLanes; ++l) {
    const int64_t ch = first + std::min(l, item.count - 1);
    for (int64_t n = 0; n < n_state; ++n) item.a[n][l] = A[ch * n_state + n];
    item.d_skip[l] = D[ch];
    item.bias[l] = bias[ch];
  }
}

// Once w.dt holds delta and w.gate holds z: dt = softplus(delta + bias) and the gate SiLU(z) in
// place, and in the backward their derivatives. Computed in the lane layout, every step is one full
// vector whatever L.
template <typename T>
void lane_factors(int64_t length, const LaneItem<T>& item, LaneScratch<T>& w, bool backward) {
  for (int64_t t = 0; t < length; ++t) {
    T* dt = w.dt.data() + t * kLanes;
    T* gate = w.gate.data() + t * kLanes;
    T* dsoftplus = backward ? w.dsoftplus.data() + t * kLanes : nullptr;
    T* dgate = backward ? w.dgate.data() + t * kLanes : nullptr;
#pragma omp simd
    for (int64_t l = 0; l < kLanes; ++l) {
      const T x = dt[l] + item.bias[l], z = gate[l], sig = sigmoid(z);
      dt[l] = softplus(x);
      gate[l] = z * sig;
      if (backward) {
        dsoftplus[l] = x > T(20) ? T(1) : sigmoid(x);  // softplus'(x), matching softplus's threshold
        dgate[l] = sig * (T(1) + z * (T(1) - sig));    // d SiLU(z) / dz
      }
    }
  }
}

// The recurrence over all L steps: pre-gate outputs into w.y, and, when the backward needs them,
// the states and decays into w.states and w.decays.
template <typename T, int64_t kN>
void recurrence_lanes(int64_t n_state, int64_t length, const LaneItem<T>& item, LaneScratch<T>& w,
                      bool keep_states) {
  const int64_t N = state_size<kN>(n_state), L = length;
  T h[kMaxState][kLanes] = {};
  for (int64_t t = 0; t < L; ++t) {
    const T* dt = w.dt.data() + t * kLanes;
    const T* ut = w.u.data() + t * kLanes;
    const T* bt = item.bt + t * item.bc_step;
    const T* ct = item.ct + t * item.bc_step;
    T du[kLanes], y[kLanes] = {};
#pragma omp simd
    for (int64_t l = 0; l < kLanes; ++l) du[l] = dt[l] * ut[l];
#pragma GCC unroll 16
    for (int64_t n = 0; n < N; ++n) {
      const T bn = bt[n], cn = ct[n];
      T decay[kLanes];
#pragma omp simd
      for (int64_t l = 0; l < kLanes; ++l) {
        decay[l] = decay_exp(dt[l] * item.a[n][l]);
        h[n][l] = decay[l] * h[n][l] + du[l] * bn;
        y[l] += h[n][l] * cn;
      }
      if (!keep_states) continue;
      std::copy(h[n], h[n] + kLanes, w.states.data() + (t * N + n) * kLanes);
      std::copy(decay, decay + kLanes, w.decays.data() + (t * N + n) * kLanes);
    }
    T* yt = w.y.data() + t * kLanes;
#pragma omp simd
    for (int64_t l = 0; l < kLanes; ++l) yt[l] = y[l] + item.d_skip[l] * ut[l];
  }
}

// Per-lane sums of one item's parameter gradients.
template <typename T>
struct LaneParamGrads {
  T dA[kMaxState][kLanes], dD[kLanes], dbias[kLanes];
};

// Gradients of one work item, a reverse-time pass over its recomputed states. The gradients of
// the shared B and C are added lane by lane to w.dB and w.dC; per-channel ones go to w.du,
// w.ddelta, w.dz and to `grads`.
template <typename T, int64_t kN>
void backward_lanes(int64_t n_state, int64_t length, const LaneItem<T>& item, LaneScratch<T>& w,
                    LaneParamGrads<T>& grads) {
  const int64_t N = state_size<kN>(n_state), L = length;
  T dh_next[kMaxState][kLanes] = {};  // dLoss/dh_t carried from step t+1, already times its decay
  const T zero_state[kMaxState * kLanes] = {};
  for (int64_t n = 0; n < N; ++n) std::fill(grads.dA[n], grads.dA[n] + kLanes, T(0));
  std::fill(grads.dD, grads.dD + kLanes, T(0));
  std::fill(grads.dbias, grads.dbias + kLanes, T(0));
  for (int64_t t = L - 1; t >= 0; --t) {
    const int64_t at_t = t * kLanes;
    const T* dt = w.dt.data() + at_t;
    const T* ut = w.u.data() + at_t;
    const T* h = w.states.data() + t * N * kLanes;
    const T* h_prev = t > 0 ? w.states.data() + (t - 1) * N * kLanes : zero_state;
    const T* decays = w.decays.data() + t * N * kLanes;
    const T* bt = item.bt + t * item.bc_step;
    const T* ct = item.ct + t * item.bc_step;
    T* dB_t = w.dB.data() + t * N * kLanes;
    T* dC_t = w.dC.data() + t * N * kLanes;
    T dy[kLanes], ddt[kLanes], du[kLanes], dtu[kLanes];
#pragma omp simd
    for (int64_t l = 0; l < kLanes; ++l) {
      const T go = w.grad[at_t + l];
      w.dz[at_t + l] = go * w.y[at_t + l] * w.dgate[at_t + l];
      dy[l] = go * w.gate[at_t + l];
      grads.dD[l] += dy[l] * ut[l];
      ddt[l] = T(0);
      du[l] = dy[l] * item.d_skip[l];
      dtu[l] = dt[l] * ut[l];
    }
#pragma GCC unroll 16
    for (int64_t n = 0; n < N; ++n) {
      const T bn = bt[n], cn = ct[n];
      const T* hn = h + n * kLanes;
      const T* hpn = h_prev + n * kLanes;
      const T* decay = decays + n * kLanes;
      T* dBn = dB_t + n * kLanes;
      T* dCn = dC_t + n * kLanes;
#pragma omp simd
      for (int64_t l = 0; l < kLanes; ++l) {
        const T dh = dy[l] * cn + dh_next[n][l];
        dCn[l] += dy[l] * hn[l];
        dBn[l] += dh * dtu[l];
        ddt[l] += dh * (decay[l] * item.a[n][l] * hpn[l] + bn * ut[l]);
        grads.dA[n][l] += dh * decay[l] * dt[l] * hpn[l];
        du[l] += dh * dt[l] * bn;
        dh_next[n][l] = dh * decay[l];
      }
    }
#pragma omp simd
    for (int64_t l = 0; l < kLanes; ++l) {
      const T dx = ddt[l] * w.dsoftplus[at_t + l];
      w.ddelta[at_t + l] = dx;
      grads.dbias[l] += dx;
      w.du[at_t + l] = du[l];
    }
  }
}

// The parameter gradients' per-batch-row shares, (batch, channels, N) and (batch, channels): each
// row is written by the one work item that owns it, and the rows are summed in batch order at the
// end (sum_batch_shares), so the result does not depend on the thread count.
template <typename T>
class ParamGradShares {
 public:
  ParamGradShares(int64_t batch, int64_t channels, int64_t n_state, const at::TensorOptions& options)
      : n_state_(n_state),
        dA_(at::empty({batch, channels, n_state}, options)),
        dD_(at::empty({batch, channels}, options)),
        dbias_(at::empty({batch, channels}, options)),
        pdA_(dA_.data_ptr<T>()),
        pdD_(dD_.data_ptr<T>()),
        pdbias_(dbias_.data_ptr<T>()) {}

  // An item's `count` channels, from flattened (batch, channel) row `row` on.
  void store(const LaneParamGrads<T>& grads, int64_t count, int64_t row) const {
    for (int64_t l = 0; l < count; ++l) {
      for (int64_t n = 0; n < n_state_; ++n) pdA_[(row + l) * n_state_ + n] = grads.dA[n][l];
      pdD_[row + l] = grads.dD[l];
      pdbias_[row + l] = grads.dbias[l];
    }
  }

  struct Totals {
    at::Tensor dA, dD, dbias;
  };
  Totals totals() const {
    return {sum_batch_shares<T>(dA_), sum_batch_shares<T>(dD_), sum_batch_shares<T>(dbias_)};
  }

 private:
  int64_t n_state_;
  at::Tensor dA_, dD_, dbias_;
  T *pdA_, *pdD_, *pdbias_;
};

// One (batch, group)'s dB or dC from the lanes' shares (L, N, lanes): the sum over lanes of scan
// step t and state n goes to out[t * t_stride + n * n_stride].
template <typename T>
void sum_lanes(const std::vector<T>& shares, int64_t length, int64_t n_state, T* out, int64_t t_stride,
               int64_t n_stride) {
  for (int64_t t = 0; t < length; ++t) {
    for (int64_t n = 0; n < n_state; ++n) {
      const T* lanes = shares.data() + (t * n_state + n) * kLanes;
      T sum = 0;
      for (int64_t l = 0; l < kLanes; ++l) sum += lanes[l];
      out[t * t_stride + n * n_stride] = sum;
    }
  }
}

}  // namespace vimvq::ops::lanes
