// CPU kernels of the selective scan; no (batch, dim, L, N) temporaries anywhere.
// Forward: 16 channels of one (batch, group) per work item, one channel per vector lane, the
// states in registers (see forward_lanes). Backward: one reverse-time pass per (batch, channel)
// after recomputing that channel's states (forward_channel).
// Built with -ffast-math (this file only) so that GCC vectorizes exp, log1p and the sigmoid via
// libmvec.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "vimvq/ops/selective_scan.h"

namespace vimvq::ops {
namespace {

constexpr int64_t kMaxState = 64;
// Channels per backward work item. Fixed (not derived from the thread count) so that the order
// of every floating-point sum, hence the result, is the same for any number of threads.
constexpr int64_t kChannelChunk = 16;

template <typename T>
inline T softplus(T x) {
  return x > T(20) ? x : std::log1p(std::exp(x));
}

template <typename T>
inline T sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}

// exp for the recurrence's decays, inlined so that the lane loop stays in vector registers
// (a libmvec call spills the N states around every call). Range reduction by ln 2 in two parts
// and a degree-6 minimax polynomial on [-ln2/2, ln2/2]: relative error ~2e-7, like expf.
// Arguments below -87 flush to ~0 (the decay of a state that is already forgotten).
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

// B or C (batch, G, N, L) -> (batch, G, L, N) contiguous: each step reads N adjacent values.
at::Tensor time_major(const at::Tensor& t) { return t.transpose(2, 3).contiguous(); }

template <typename T>
void forward_channel(const Dims& s, int64_t b, int64_t d, const T* u, const T* delta, const T* A, const T* Bt,
                     const T* Ct, const T* D, const T* z, const T* bias, T* out,
                     T* states /* L*N or nullptr */, T* decays /* L*N or nullptr */) {
  const int64_t N = s.n_state, L = s.length;
  const int64_t row = (b * s.dim + d) * L;
  const int64_t g = d / s.per_group;
  const T* bt = Bt + (b * s.groups + g) * L * N;
  const T* ct = Ct + (b * s.groups + g) * L * N;
  const T* a = A + d * N;
  T h[kMaxState] = {};
  for (int64_t t = 0; t < L; ++t) {
    const T dt = softplus(delta[row + t] + bias[d]);
    const T ut = u[row + t];
    const T du = dt * ut;
    const T* bn = bt + t * N;
    const T* cn = ct + t * N;
    T y = 0;
    T decay[kMaxState];
#pragma omp simd reduction(+ : y)
    for (int64_t n = 0; n < N; ++n) {
      decay[n] = std::exp(dt * a[n]);
      h[n] = decay[n] * h[n] + du * bn[n];
      y += h[n] * cn[n];
    }
    if (states != nullptr) {  // kept for the backward pass, which then needs no exp of its own
      for (int64_t n = 0; n < N; ++n) states[t * N + n] = h[n];
      for (int64_t n = 0; n < N; ++n) decays[t * N + n] = decay[n];
    }
    if (out != nullptr) {
      const T zt = z[row + t];
      out[row + t] = (y + D[d] * ut) * zt * sigmoid(zt);
    }
  }
}

// Forward over kLanes channels of one (batch, group) at once, one channel per vector lane: the
// channels share B_t and C_t, so every step is N vector exps and FMAs across lanes with no
// horizontal sums, and softplus and SiLU run vectorized over all L steps before the recurrence.
constexpr int64_t kLanes = 16;

template <typename T>
struct LaneScratch {
  explicit LaneScratch(int64_t length)
      : dt(length * kLanes), u(length * kLanes), gate(length * kLanes), y(length * kLanes), row(length) {}
  std::vector<T> dt, u, gate, y;  // (L, lanes)
  std::vector<T> row;             // one channel's L values
};

template <typename T>
void forward_lanes(const Dims& s, int64_t b, int64_t first, int64_t count, const T* u, const T* delta,
                   const T* A, const T* Bt, const T* Ct, const T* D, const T* z, const T* bias, T* out,
                   LaneScratch<T>& w) {
  const int64_t N = s.n_state, L = s.length, g = first / s.per_group;
  T a[kMaxState][kLanes], d_skip[kLanes];
  for (int64_t l = 0; l < kLanes; ++l) {
    const int64_t ch = first + std::min(l, count - 1);  // spare lanes repeat the last channel
    const int64_t row = (b * s.dim + ch) * L;
    for (int64_t n = 0; n < N; ++n) a[n][l] = A[ch * N + n];
    d_skip[l] = D[ch];
    T* tmp = w.row.data();
#pragma omp simd
    for (int64_t t = 0; t < L; ++t) tmp[t] = softplus(delta[row + t] + bias[ch]);
    for (int64_t t = 0; t < L; ++t) w.dt[t * kLanes + l] = tmp[t];
#pragma omp simd
    for (int64_t t = 0; t < L; ++t) tmp[t] = z[row + t] * sigmoid(z[row + t]);
    for (int64_t t = 0; t < L; ++t) w.gate[t * kLanes + l] = tmp[t];
    for (int64_t t = 0; t < L; ++t) w.u[t * kLanes + l] = u[row + t];
  }
  T h[kMaxState][kLanes] = {};
  const T* bt = Bt + (b * s.groups + g) * L * N;
  const T* ct = Ct + (b * s.groups + g) * L * N;
  for (int64_t t = 0; t < L; ++t) {
    const T* dt = w.dt.data() + t * kLanes;
    const T* ut = w.u.data() + t * kLanes;
    T du[kLanes], y[kLanes] = {};
#pragma omp simd
    for (int64_t l = 0; l < kLanes; ++l) du[l] = dt[l] * ut[l];
    for (int64_t n = 0; n < N; ++n) {
      const T bn = bt[t * N + n], cn = ct[t * N + n];
#pragma omp simd
      for (int64_t l = 0; l < kLanes; ++l) {
        h[n][l] = decay_exp(dt[l] * a[n][l]) * h[n][l] + du[l] * bn;
        y[l] += h[n][l] * cn;
      }
    }
    const T* gt = w.gate.data() + t * kLanes;
    T* yt = w.y.data() + t * kLanes;
#pragma omp simd
    for (int64_t l = 0; l < kLanes; ++l) yt[l] = (y[l] + d_skip[l] * ut[l]) * gt[l];
  }
  for (int64_t l = 0; l < count; ++l) {
    T* row = out + (b * s.dim + first + l) * L;
    for (int64_t t = 0; t < L; ++t) row[t] = w.y[t * kLanes + l];
  }
}

template <typename T>
void forward_impl(const Dims& s, const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A,
                  const at::Tensor& Bt, const at::Tensor& Ct, const at::Tensor& D, const at::Tensor& z,
                  const at::Tensor& bias, at::Tensor& out) {
  const T *pu = u.data_ptr<T>(), *pdelta = delta.data_ptr<T>(), *pa = A.data_ptr<T>();
  const T *pb = Bt.data_ptr<T>(), *pc = Ct.data_ptr<T>(), *pd = D.data_ptr<T>();
  const T *pz = z.data_ptr<T>(), *pbias = bias.data_ptr<T>();
  T* pout = out.data_ptr<T>();
  // Work items: (batch, group, block of kLanes channels inside the group).
  const int64_t blocks = (s.per_group + kLanes - 1) / kLanes;
  const int64_t grain = std::max<int64_t>(1, 256 / std::max<int64_t>(1, s.length));
  at::parallel_for(0, s.batch * s.groups * blocks, grain, [&](int64_t begin, int64_t end) {
    LaneScratch<T> scratch(s.length);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t b = item / (s.groups * blocks), g = (item / blocks) % s.groups, block = item % blocks;
      const int64_t first = g * s.per_group + block * kLanes;
      const int64_t count = std::min(kLanes, (g + 1) * s.per_group - first);
      forward_lanes<T>(s, b, first, count, pu, pdelta, pa, pb, pc, pd, pz, pbias, pout, scratch);
    }
  });
}

// Reverse-time pass for one (batch, channel), given its forward states. Gradients of the shared
// B and C are added into this work item's own partial buffers (dB_part, dC_part: L*N).
template <typename T>
void backward_channel(const Dims& s, int64_t b, int64_t d, const T* grad, const T* u, const T* delta,
                      const T* A, const T* Bt, const T* Ct, const T* D, const T* z, const T* bias,
                      const T* states, const T* decays, T* du_out, T* ddelta_out, T* dz_out, T* dA_row, T& dD,
                      T& dbias, T* dB_part, T* dC_part) {
  const int64_t N = s.n_state, L = s.length;
  const int64_t row = (b * s.dim + d) * L;
  const int64_t g = d / s.per_group;
  const T* bt = Bt + (b * s.groups + g) * L * N;
  const T* ct = Ct + (b * s.groups + g) * L * N;
  const T* a = A + d * N;
  T dh_next[kMaxState] = {};  // dL/dh_{t} carried from step t+1, already multiplied by its decay
  T dA_acc[kMaxState] = {};
  T dD_acc = 0, dbias_acc = 0;
  for (int64_t t = L - 1; t >= 0; --t) {
    const T zt = z[row + t], ut = u[row + t];
    const T sig = sigmoid(zt);
    const T* h = states + t * N;
    const T* decay_t = decays + t * N;
    const T* bn = bt + t * N;
    const T* cn = ct + t * N;
    T y = 0;
#pragma omp simd reduction(+ : y)
    for (int64_t n = 0; n < N; ++n) y += h[n] * cn[n];
    y += D[d] * ut;
    const T go = grad[row + t];
    dz_out[row + t] = go * y * sig * (T(1) + zt * (T(1) - sig));
    const T dy = go * zt * sig;
    dD_acc += dy * ut;
    const T x = delta[row + t] + bias[d];
    const T dt = softplus(x);
    T ddt = 0, du = dy * D[d];
    T* dbn = dB_part + t * N;
    T* dcn = dC_part + t * N;
    const T zero_state[kMaxState] = {};
    const T* h_prev = t > 0 ? states + (t - 1) * N : zero_state;
#pragma omp simd reduction(+ : ddt, du)
    for (int64_t n = 0; n < N; ++n) {
      const T dh = dy * cn[n] + dh_next[n];
      const T decay = decay_t[n];
      dcn[n] += dy * h[n];
      ddt += dh * (decay * a[n] * h_prev[n] + bn[n] * ut);
      dA_acc[n] += dh * decay * dt * h_prev[n];
      dbn[n] += dh * dt * ut;
      du += dh * dt * bn[n];
      dh_next[n] = dh * decay;
    }
    const T dx = x > T(20) ? ddt : ddt * sigmoid(x);
    ddelta_out[row + t] = dx;
    dbias_acc += dx;
    du_out[row + t] = du;
  }
  for (int64_t n = 0; n < N; ++n) dA_row[n] = dA_acc[n];
  dD = dD_acc;
  dbias = dbias_acc;
}

template <typename T>
std::vector<at::Tensor> backward_impl(const Dims& s, const at::Tensor& grad, const at::Tensor& u,
                                      const at::Tensor& delta, const at::Tensor& A, const at::Tensor& Bt,
                                      const at::Tensor& Ct, const at::Tensor& D, const at::Tensor& z,
                                      const at::Tensor& bias) {
  const int64_t N = s.n_state, L = s.length;
  const int64_t chunks = (s.per_group + kChannelChunk - 1) / kChannelChunk;
  auto du = at::empty_like(u), ddelta = at::empty_like(u), dz = at::empty_like(u);
  auto dA_per_batch = at::empty({s.batch, s.dim, N}, u.options());
  auto dD_per_batch = at::empty({s.batch, s.dim}, u.options());
  auto dbias_per_batch = at::empty({s.batch, s.dim}, u.options());
  auto dB_part = at::zeros({s.batch, s.groups, chunks, L, N}, u.options());
  auto dC_part = at::zeros({s.batch, s.groups, chunks, L, N}, u.options());

  const T *pg = grad.data_ptr<T>(), *pu = u.data_ptr<T>(), *pdelta = delta.data_ptr<T>();
  const T *pa = A.data_ptr<T>(), *pb = Bt.data_ptr<T>(), *pc = Ct.data_ptr<T>();
  const T *pd = D.data_ptr<T>(), *pz = z.data_ptr<T>(), *pbias = bias.data_ptr<T>();
  T *pdu = du.data_ptr<T>(), *pddelta = ddelta.data_ptr<T>(), *pdz = dz.data_ptr<T>();
  T *pdA = dA_per_batch.data_ptr<T>(), *pdD = dD_per_batch.data_ptr<T>();
  T* pdbias = dbias_per_batch.data_ptr<T>();
  T *pdB = dB_part.data_ptr<T>(), *pdC = dC_part.data_ptr<T>();

  const int64_t items = s.batch * s.groups * chunks;
  at::parallel_for(0, items, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> states(static_cast<size_t>(L * N)), decays(static_cast<size_t>(L * N));
    for (int64_t item = begin; item < end; ++item) {
      const int64_t b = item / (s.groups * chunks);
      const int64_t g = (item / chunks) % s.groups;
      const int64_t chunk = item % chunks;
      const int64_t first = g * s.per_group + chunk * kChannelChunk;
      const int64_t last = std::min(first + kChannelChunk, (g + 1) * s.per_group);
      T* dB_item = pdB + item * L * N;
      T* dC_item = pdC + item * L * N;
      for (int64_t d = first; d < last; ++d) {
        forward_channel<T>(s, b, d, pu, pdelta, pa, pb, pc, pd, pz, pbias, nullptr, states.data(),
                           decays.data());
        const int64_t bd = b * s.dim + d;
        backward_channel<T>(s, b, d, pg, pu, pdelta, pa, pb, pc, pd, pz, pbias, states.data(), decays.data(),
                            pdu, pddelta, pdz, pdA + bd * N, pdD[bd], pdbias[bd], dB_item, dC_item);
      }
    }
  });

  // Ordered reductions (fixed summation order whatever the thread count).
  auto dA = at::zeros({s.dim, N}, u.options());
  auto dD = at::zeros({s.dim}, u.options());
  auto dbias = at::zeros({s.dim}, u.options());
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
  auto dB = at::zeros({s.batch, s.groups, L, N}, u.options());
  auto dC = at::zeros({s.batch, s.groups, L, N}, u.options());
  T *qB = dB.data_ptr<T>(), *qC = dC.data_ptr<T>();
  at::parallel_for(0, s.batch * s.groups, 1, [&](int64_t begin, int64_t end) {
    for (int64_t bg = begin; bg < end; ++bg) {
      for (int64_t c = 0; c < chunks; ++c) {
        const T* srcB = pdB + (bg * chunks + c) * L * N;
        const T* srcC = pdC + (bg * chunks + c) * L * N;
        for (int64_t i = 0; i < L * N; ++i) {
          qB[bg * L * N + i] += srcB[i];
          qC[bg * L * N + i] += srcC[i];
        }
      }
    }
  });
  return {du, ddelta, dA, dB.transpose(2, 3).contiguous(), dC.transpose(2, 3).contiguous(), dD, dz, dbias};
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

at::Tensor selective_scan_forward_cpu(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A,
                                      const at::Tensor& B, const at::Tensor& C, const at::Tensor& D,
                                      const at::Tensor& z, const at::Tensor& delta_bias) {
  check_selective_scan_inputs(u, delta, A, B, C, D, z, delta_bias);
  const Dims s = dims_of(u, A, B);
  auto uc = u.contiguous(), deltac = delta.contiguous(), Ac = A.contiguous(), zc = z.contiguous();
  auto Bt = time_major(B), Ct = time_major(C), Dc = D.contiguous(), biasc = delta_bias.contiguous();
  auto out = at::empty_like(uc);
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "selective_scan_forward_cpu",
                             [&] { forward_impl<scalar_t>(s, uc, deltac, Ac, Bt, Ct, Dc, zc, biasc, out); });
  return out;
}

std::vector<at::Tensor> selective_scan_backward_cpu(const at::Tensor& grad_out, const at::Tensor& u,
                                                    const at::Tensor& delta, const at::Tensor& A,
                                                    const at::Tensor& B, const at::Tensor& C,
                                                    const at::Tensor& D, const at::Tensor& z,
                                                    const at::Tensor& delta_bias) {
  check_selective_scan_inputs(u, delta, A, B, C, D, z, delta_bias);
  TORCH_CHECK(grad_out.sizes() == u.sizes(), "selective_scan backward: grad must have u's shape");
  const Dims s = dims_of(u, A, B);
  std::vector<at::Tensor> grads;
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "selective_scan_backward_cpu", [&] {
    grads = backward_impl<scalar_t>(s, grad_out.contiguous().to(u.scalar_type()), u.contiguous(),
                                    delta.contiguous(), A.contiguous(), time_major(B), time_major(C),
                                    D.contiguous(), z.contiguous(), delta_bias.contiguous());
  });
  return grads;
}

}  // namespace vimvq::ops
