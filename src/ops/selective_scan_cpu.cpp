// CPU kernels of the selective scan; no (batch, dim, L, N) temporary exists. Forward and backward
// both work on 16 channels of one (batch, group) at a time, one channel per vector lane (see
// kLanes); the backward recomputes the item's states, then runs one reverse-time pass.
// Built with -ffast-math (this file only) so that GCC vectorizes exp, log1p and the sigmoid via
// libmvec.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <tuple>
#include <utility>
#include <vector>

#include "vimvq/ops/selective_scan.h"

namespace vimvq::ops {
namespace {

constexpr int64_t kMaxState = 64;

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

struct Dims {
  int64_t batch, dim, length, n_state, groups, per_group;
};

Dims dims_of(const at::Tensor& u, const at::Tensor& A, const at::Tensor& B) {
  Dims d{u.size(0), u.size(1), u.size(2), A.size(1), B.size(1), 0};
  d.per_group = d.dim / d.groups;
  return d;
}

// Work items are kLanes channels of one (batch, group), one channel per vector lane: the channels
// share B_t and C_t, so a step is N vector exps and FMAs across lanes with no horizontal sums in
// the forward; softplus, SiLU and their derivatives are computed in that lane layout up front.
// The item boundaries are fixed (not derived from the thread count), so the order of every
// floating-point sum, hence the result, is the same for any number of threads.
constexpr int64_t kLanes = 16;

// The state size the models use (Vim: N = 16). Kernels take N as a template argument, 0 meaning
// "from the call": at a fixed N the compiler unrolls the state loop and keeps the N state vectors
// in registers instead of reloading them from the stack at every step.
constexpr int64_t kCommonState = 16;

template <int64_t kN>
inline int64_t state_size(const Dims& s) {
  return kN > 0 ? kN : s.n_state;
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

template <typename T>
void from_lane(const T* src, int64_t length, int64_t lane, T* dst) {
  for (int64_t t = 0; t < length; ++t) dst[t] = src[t * kLanes + lane];
}

// Pointers of one call, shared by every work item.
template <typename T>
struct ScanArgs {
  const T *u, *delta, *A, *Bt, *Ct, *D, *z, *bias, *grad;
};

// One work item: which channels, and their per-channel parameters laid out by lane.
template <typename T>
struct LaneItem {
  int64_t b, first, count;
  T a[kMaxState][kLanes];
  T d_skip[kLanes];
  const T *bt, *ct;  // this (batch, group)'s B and C, time-major (L, N)
};

// Work item i of a call: batch, then group, then block of kLanes channels inside the group.
template <typename T>
void locate_item(const Dims& s, int64_t i, LaneItem<T>& item) {
  const int64_t blocks = (s.per_group + kLanes - 1) / kLanes;
  const int64_t g = (i / blocks) % s.groups;
  item.b = i / (s.groups * blocks);
  item.first = g * s.per_group + (i % blocks) * kLanes;
  item.count = std::min(kLanes, (g + 1) * s.per_group - item.first);
}

// Rows of the item's channels of a (batch, dim, L) input into (L, lanes); spare lanes repeat the
// last channel, or are zero when `zero_spare`. (Bound by reading the rows from memory: a
// transposition through an L1 tile measured no faster.)
template <typename T>
void to_lanes(const Dims& s, const LaneItem<T>& item, const T* input, bool zero_spare, T* dst) {
  const int64_t L = s.length;
  for (int64_t l = 0; l < kLanes; ++l) {
    if (zero_spare && l >= item.count) {
      for (int64_t t = 0; t < L; ++t) dst[t * kLanes + l] = T(0);
      continue;
    }
    const T* src = input + (item.b * s.dim + item.first + std::min(l, item.count - 1)) * L;
    for (int64_t t = 0; t < L; ++t) dst[t * kLanes + l] = src[t];
  }
}

// Fills the item's lane parameters and its (L, lanes) inputs and per-step factors; spare lanes
// (count < kLanes) repeat the last channel and, in the backward, get a zero output gradient so
// they contribute nothing. The factors are computed in the lane layout: every step is one full
// vector, whatever L.
template <typename T>
void load_lanes(const Dims& s, const ScanArgs<T>& in, LaneItem<T>& item, LaneScratch<T>& w, bool backward) {
  const int64_t N = s.n_state, L = s.length, g = item.first / s.per_group;
  item.bt = in.Bt + (item.b * s.groups + g) * L * N;
  item.ct = in.Ct + (item.b * s.groups + g) * L * N;
  T bias[kLanes];
  for (int64_t l = 0; l < kLanes; ++l) {
    const int64_t ch = item.first + std::min(l, item.count - 1);
    for (int64_t n = 0; n < N; ++n) item.a[n][l] = in.A[ch * N + n];
    item.d_skip[l] = in.D[ch];
    bias[l] = in.bias[ch];
  }
  to_lanes(s, item, in.u, false, w.u.data());
  to_lanes(s, item, in.delta, false, w.dt.data());  // delta, then dt in place
  to_lanes(s, item, in.z, false, w.gate.data());    // z, then the gate in place
  if (backward) to_lanes(s, item, in.grad, true, w.grad.data());
  for (int64_t t = 0; t < L; ++t) {
    T* dt = w.dt.data() + t * kLanes;
    T* gate = w.gate.data() + t * kLanes;
    T* dsoftplus = backward ? w.dsoftplus.data() + t * kLanes : nullptr;
    T* dgate = backward ? w.dgate.data() + t * kLanes : nullptr;
#pragma omp simd
    for (int64_t l = 0; l < kLanes; ++l) {
      const T x = dt[l] + bias[l], z = gate[l], sig = sigmoid(z);
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
void recurrence_lanes(const Dims& s, const LaneItem<T>& item, LaneScratch<T>& w, bool keep_states) {
  const int64_t N = state_size<kN>(s), L = s.length;
  T h[kMaxState][kLanes] = {};
  for (int64_t t = 0; t < L; ++t) {
    const T* dt = w.dt.data() + t * kLanes;
    const T* ut = w.u.data() + t * kLanes;
    T du[kLanes], y[kLanes] = {};
#pragma omp simd
    for (int64_t l = 0; l < kLanes; ++l) du[l] = dt[l] * ut[l];
#pragma GCC unroll 16
    for (int64_t n = 0; n < N; ++n) {
      const T bn = item.bt[t * N + n], cn = item.ct[t * N + n];
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

template <typename T, int64_t kN>
void forward_impl(const Dims& s, const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A,
                  const at::Tensor& Bt, const at::Tensor& Ct, const at::Tensor& D, const at::Tensor& z,
                  const at::Tensor& bias, at::Tensor& out) {
  const ScanArgs<T> in{u.data_ptr<T>(),  delta.data_ptr<T>(), A.data_ptr<T>(),
                       Bt.data_ptr<T>(), Ct.data_ptr<T>(),    D.data_ptr<T>(),
                       z.data_ptr<T>(),  bias.data_ptr<T>(),  nullptr};
  T* pout = out.data_ptr<T>();
  const int64_t blocks = (s.per_group + kLanes - 1) / kLanes;
  const int64_t grain = std::max<int64_t>(1, 256 / std::max<int64_t>(1, s.length));
  at::parallel_for(0, s.batch * s.groups * blocks, grain, [&](int64_t begin, int64_t end) {
    LaneScratch<T> w(s.length, s.n_state, false);
    LaneItem<T> item;
    for (int64_t i = begin; i < end; ++i) {
      locate_item(s, i, item);
      load_lanes(s, in, item, w, false);
      recurrence_lanes<T, kN>(s, item, w, false);
      for (int64_t l = 0; l < item.count; ++l) {
        T* row = pout + (item.b * s.dim + item.first + l) * s.length;
        for (int64_t t = 0; t < s.length; ++t) row[t] = w.y[t * kLanes + l] * w.gate[t * kLanes + l];
      }
    }
  });
}

// Gradients of one work item, a reverse-time pass over its recomputed states. The gradients of
// the shared B and C are added lane by lane to w.dB and w.dC; per-channel ones go to rows of du,
// ddelta, dz and to dA, dD, dbias.
template <typename T, int64_t kN>
void backward_lanes(const Dims& s, const LaneItem<T>& item, LaneScratch<T>& w, T (&dA_acc)[kMaxState][kLanes],
                    T (&dD_acc)[kLanes], T (&dbias_acc)[kLanes]) {
  const int64_t N = state_size<kN>(s), L = s.length;
  T dh_next[kMaxState][kLanes] = {};  // dLoss/dh_t carried from step t+1, already times its decay
  const T zero_state[kMaxState * kLanes] = {};
  for (int64_t n = 0; n < N; ++n) std::fill(dA_acc[n], dA_acc[n] + kLanes, T(0));
  std::fill(dD_acc, dD_acc + kLanes, T(0));
  std::fill(dbias_acc, dbias_acc + kLanes, T(0));
  for (int64_t t = L - 1; t >= 0; --t) {
    const int64_t at_t = t * kLanes;
    const T* dt = w.dt.data() + at_t;
    const T* ut = w.u.data() + at_t;
    const T* h = w.states.data() + t * N * kLanes;
    const T* h_prev = t > 0 ? w.states.data() + (t - 1) * N * kLanes : zero_state;
    const T* decays = w.decays.data() + t * N * kLanes;
    T* dB_t = w.dB.data() + t * N * kLanes;
    T* dC_t = w.dC.data() + t * N * kLanes;
    T dy[kLanes], ddt[kLanes], du[kLanes], dtu[kLanes];
#pragma omp simd
    for (int64_t l = 0; l < kLanes; ++l) {
      const T go = w.grad[at_t + l];
      w.dz[at_t + l] = go * w.y[at_t + l] * w.dgate[at_t + l];
      dy[l] = go * w.gate[at_t + l];
      dD_acc[l] += dy[l] * ut[l];
      ddt[l] = T(0);
      du[l] = dy[l] * item.d_skip[l];
      dtu[l] = dt[l] * ut[l];
    }
#pragma GCC unroll 16
    for (int64_t n = 0; n < N; ++n) {
      const T bn = item.bt[t * N + n], cn = item.ct[t * N + n];
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
        dA_acc[n][l] += dh * decay[l] * dt[l] * hpn[l];
        du[l] += dh * dt[l] * bn;
        dh_next[n][l] = dh * decay[l];
      }
    }
#pragma omp simd
    for (int64_t l = 0; l < kLanes; ++l) {
      const T dx = ddt[l] * w.dsoftplus[at_t + l];
      w.ddelta[at_t + l] = dx;
      dbias_acc[l] += dx;
      w.du[at_t + l] = du[l];
    }
  }
}

// Ordered reductions: fixed summation order whatever the thread count, so the same bits.
// dA, dD and delta_bias: the per-batch shares summed over the batch.
template <typename T>
std::tuple<at::Tensor, at::Tensor, at::Tensor> sum_over_batch(const Dims& s, const T* pdA, const T* pdD,
                                                              const T* pdbias,
                                                              const at::TensorOptions& options) {
  const int64_t N = s.n_state;
  auto dA = at::zeros({s.dim, N}, options);
  auto dD = at::zeros({s.dim}, options);
  auto dbias = at::zeros({s.dim}, options);
  T *qA = dA.data_ptr<T>(), *qD = dD.data_ptr<T>(), *qbias = dbias.data_ptr<T>();
  at::parallel_for(0, s.dim, 16, [&](int64_t begin, int64_t end) {
    for (int64_t d = begin; d < end; ++d) {
      for (int64_t b = 0; b < s.batch; ++b) {
        const int64_t bd = b * s.dim + d;
        for (int64_t n = 0; n < N; ++n) qA[d * N + n] += pdA[bd * N + n];
        qD[d] += pdD[bd];
        qbias[d] += pdbias[bd];
      }
    }
  });
  return {dA, dD, dbias};
}

// One (batch, group)'s dB or dC, (N, L), from the lanes' shares (L, N, lanes).
template <typename T>
void sum_lanes(const std::vector<T>& shares, int64_t length, int64_t n_state, T* out) {
  for (int64_t t = 0; t < length; ++t) {
    for (int64_t n = 0; n < n_state; ++n) {
      const T* lanes = shares.data() + (t * n_state + n) * kLanes;
      T sum = 0;
      for (int64_t l = 0; l < kLanes; ++l) sum += lanes[l];
      out[n * length + t] = sum;
    }
  }
}

template <typename T, int64_t kN>
std::vector<at::Tensor> backward_impl(const Dims& s, const at::Tensor& grad, const at::Tensor& u,
                                      const at::Tensor& delta, const at::Tensor& A, const at::Tensor& Bt,
                                      const at::Tensor& Ct, const at::Tensor& D, const at::Tensor& z,
                                      const at::Tensor& bias) {
  const int64_t N = s.n_state, L = s.length;
  const int64_t chunks = (s.per_group + kLanes - 1) / kLanes;
  auto du = at::empty_like(u), ddelta = at::empty_like(u), dz = at::empty_like(u);
  auto dA_per_batch = at::empty({s.batch, s.dim, N}, u.options());
  auto dD_per_batch = at::empty({s.batch, s.dim}, u.options());
  auto dbias_per_batch = at::empty({s.batch, s.dim}, u.options());
  // dB and dC are sums over a group's channels. One work item per (batch, group) adds its lane
  // chunks in order, lane by lane, then sums the lanes: a fixed order for any thread count, and
  // no horizontal sum per step and state, nor a per-chunk partial buffer (which was
  // batch * chunks * L * N floats, 390 MB per scan at Vim-B widths).
  auto dB = at::empty({s.batch, s.groups, N, L}, u.options());
  auto dC = at::empty({s.batch, s.groups, N, L}, u.options());

  const ScanArgs<T> in{u.data_ptr<T>(),  delta.data_ptr<T>(), A.data_ptr<T>(),
                       Bt.data_ptr<T>(), Ct.data_ptr<T>(),    D.data_ptr<T>(),
                       z.data_ptr<T>(),  bias.data_ptr<T>(),  grad.data_ptr<T>()};
  T *pdu = du.data_ptr<T>(), *pddelta = ddelta.data_ptr<T>(), *pdz = dz.data_ptr<T>();
  T *pdA = dA_per_batch.data_ptr<T>(), *pdD = dD_per_batch.data_ptr<T>();
  T* pdbias = dbias_per_batch.data_ptr<T>();
  T *pdB = dB.data_ptr<T>(), *pdC = dC.data_ptr<T>();

  at::parallel_for(0, s.batch * s.groups, 1, [&](int64_t begin, int64_t end) {
    LaneScratch<T> w(L, N, true);
    LaneItem<T> item;
    T dA_acc[kMaxState][kLanes], dD_acc[kLanes], dbias_acc[kLanes];
    for (int64_t bg = begin; bg < end; ++bg) {
      std::fill(w.dB.begin(), w.dB.end(), T(0));
      std::fill(w.dC.begin(), w.dC.end(), T(0));
      for (int64_t i = bg * chunks; i < (bg + 1) * chunks; ++i) {
        locate_item(s, i, item);
        load_lanes(s, in, item, w, true);
        recurrence_lanes<T, kN>(s, item, w, true);
        backward_lanes<T, kN>(s, item, w, dA_acc, dD_acc, dbias_acc);
        for (int64_t l = 0; l < item.count; ++l) {
          const int64_t bd = item.b * s.dim + item.first + l;
          from_lane(w.du.data(), L, l, pdu + bd * L);
          from_lane(w.ddelta.data(), L, l, pddelta + bd * L);
          from_lane(w.dz.data(), L, l, pdz + bd * L);
          for (int64_t n = 0; n < N; ++n) pdA[bd * N + n] = dA_acc[n][l];
          pdD[bd] = dD_acc[l];
          pdbias[bd] = dbias_acc[l];
        }
      }
      sum_lanes(w.dB, L, N, pdB + bg * N * L);
      sum_lanes(w.dC, L, N, pdC + bg * N * L);
    }
  });

  auto [dA, dD, dbias] = sum_over_batch(s, pdA, pdD, pdbias, u.options());
  return {du, ddelta, dA, dB, dC, dD, dz, dbias};
}

}  // namespace

void check_selective_scan_inputs(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A,
                                 const at::Tensor& B, const at::Tensor& C, const at::Tensor& D,
                                 const at::Tensor& z, const at::Tensor& delta_bias) {
  TORCH_CHECK(u.dim() == 3, "selective_scan: u must be (batch, dim, L), got ", u.sizes());
  const int64_t batch = u.size(0), dim = u.size(1), length = u.size(2);
  TORCH_CHECK(A.dim() == 2 && A.size(0) == dim, "selective_scan: A must be (dim, N), got ", A.sizes());
  const int64_t n_state = A.size(1);
  TORCH_CHECK(n_state >= 1 && n_state <= kMaxState, "selective_scan: N must be in 1..", kMaxState, ", got ",
              n_state);
  TORCH_CHECK(B.dim() == 4 && B.size(0) == batch && B.size(2) == n_state && B.size(3) == length,
              "selective_scan: B must be (batch, G, N, L), got ", B.sizes());
  const int64_t groups = B.size(1);
  TORCH_CHECK(groups >= 1 && dim % groups == 0, "selective_scan: dim ", dim, " not divisible by G ", groups);
  TORCH_CHECK(C.sizes() == B.sizes(), "selective_scan: C must have B's shape ", B.sizes(), ", got ",
              C.sizes());
  TORCH_CHECK(delta.sizes() == u.sizes(), "selective_scan: delta must have u's shape");
  TORCH_CHECK(z.sizes() == u.sizes(), "selective_scan: z must have u's shape");
  TORCH_CHECK(D.dim() == 1 && D.size(0) == dim, "selective_scan: D must be (dim)");
  TORCH_CHECK(delta_bias.dim() == 1 && delta_bias.size(0) == dim, "selective_scan: delta_bias must be (dim)");
  for (const at::Tensor* t : {&delta, &A, &B, &C, &D, &z, &delta_bias}) {
    TORCH_CHECK(t->scalar_type() == u.scalar_type(), "selective_scan: all inputs must share u's dtype ",
                u.scalar_type());
    TORCH_CHECK(t->device() == u.device(), "selective_scan: all inputs must be on u's device");
  }
}

void check_selective_scan_backward_inputs(const at::Tensor& grad_out, const at::Tensor& u,
                                          const at::Tensor& delta, const at::Tensor& A, const at::Tensor& B,
                                          const at::Tensor& C, const at::Tensor& D, const at::Tensor& z,
                                          const at::Tensor& delta_bias) {
  check_selective_scan_inputs(u, delta, A, B, C, D, z, delta_bias);
  TORCH_CHECK(grad_out.sizes() == u.sizes(), "selective_scan backward: grad must have u's shape");
}

at::Tensor time_major(const at::Tensor& t) { return t.transpose(2, 3).contiguous(); }

at::Tensor selective_scan_forward_cpu(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A,
                                      const at::Tensor& B, const at::Tensor& C, const at::Tensor& D,
                                      const at::Tensor& z, const at::Tensor& delta_bias) {
  check_selective_scan_inputs(u, delta, A, B, C, D, z, delta_bias);
  const Dims s = dims_of(u, A, B);
  auto uc = u.contiguous(), deltac = delta.contiguous(), Ac = A.contiguous(), zc = z.contiguous();
  auto Bt = time_major(B), Ct = time_major(C), Dc = D.contiguous(), biasc = delta_bias.contiguous();
  auto out = at::empty_like(uc);
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "selective_scan_forward_cpu", [&] {
    if (s.n_state == kCommonState) {
      forward_impl<scalar_t, kCommonState>(s, uc, deltac, Ac, Bt, Ct, Dc, zc, biasc, out);
    } else {
      forward_impl<scalar_t, 0>(s, uc, deltac, Ac, Bt, Ct, Dc, zc, biasc, out);
    }
  });
  return out;
}

std::vector<at::Tensor> selective_scan_backward_cpu(const at::Tensor& grad_out, const at::Tensor& u,
                                                    const at::Tensor& delta, const at::Tensor& A,
                                                    const at::Tensor& B, const at::Tensor& C,
                                                    const at::Tensor& D, const at::Tensor& z,
                                                    const at::Tensor& delta_bias) {
  check_selective_scan_backward_inputs(grad_out, u, delta, A, B, C, D, z, delta_bias);
  const Dims s = dims_of(u, A, B);
  std::vector<at::Tensor> grads;
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "selective_scan_backward_cpu", [&] {
    const auto run =
        s.n_state == kCommonState ? backward_impl<scalar_t, kCommonState> : backward_impl<scalar_t, 0>;
    grads =
        run(s, grad_out.contiguous().to(u.scalar_type()), u.contiguous(), delta.contiguous(), A.contiguous(),
            time_major(B), time_major(C), D.contiguous(), z.contiguous(), delta_bias.contiguous());
  });
  return grads;
}

}  // namespace vimvq::ops
