// CPU kernels of the channel-major selective scan; no (batch, dim, L, N) temporary exists. Forward
// and backward both work on 16 channels of one (batch, group) at a time, one channel per vector
// lane (src/ops/scan_lanes.h); the backward recomputes the item's states, then runs one
// reverse-time pass. Built with -O3 -ffast-math, like every file that includes scan_lanes.h.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "src/ops/scan_lanes.h"
#include "vimvq/ops/selective_scan.h"

namespace vimvq::ops {
namespace {

using namespace lanes;

struct Dims {
  int64_t batch, dim, length, n_state, groups, per_group;
};

Dims dims_of(const at::Tensor& u, const at::Tensor& A, const at::Tensor& B) {
  Dims d{u.size(0), u.size(1), u.size(2), A.size(1), B.size(1), 0};
  d.per_group = d.dim / d.groups;
  return d;
}

template <typename T>
void from_lane(const T* src, int64_t length, int64_t lane, T* dst) {
  for (int64_t t = 0; t < length; ++t) dst[t] = src[t * kLanes + lane];
}

// Pointers of one call, shared by every work item.
template <typename T>
struct ScanArgs {
  const T *u, *delta, *A, *Bt, *Ct, *D, *z, *bias, *grad;
};

// Work item i of a call: batch, then group, then block of kLanes channels inside the group.
struct ItemPlace {
  int64_t b, first, count;
};

ItemPlace locate_item(const Dims& s, int64_t i) {
  const int64_t blocks = (s.per_group + kLanes - 1) / kLanes;
  const int64_t g = (i / blocks) % s.groups;
  const int64_t first = g * s.per_group + (i % blocks) * kLanes;
  return {i / (s.groups * blocks), first, std::min(kLanes, (g + 1) * s.per_group - first)};
}

// Rows of the item's channels of a (batch, dim, L) input into (L, lanes); spare lanes repeat the
// last channel, or are zero when `zero_spare`. (Bound by reading the rows from memory: a
// transposition through an L1 tile measured no faster.)
template <typename T>
void to_lanes(const Dims& s, const ItemPlace& at, const T* input, bool zero_spare, T* dst) {
  const int64_t L = s.length;
  for (int64_t l = 0; l < kLanes; ++l) {
    if (zero_spare && l >= at.count) {
      for (int64_t t = 0; t < L; ++t) dst[t * kLanes + l] = T(0);
      continue;
    }
    const T* src = input + (at.b * s.dim + at.first + std::min(l, at.count - 1)) * L;
    for (int64_t t = 0; t < L; ++t) dst[t * kLanes + l] = src[t];
  }
}

// Fills the item's lane parameters and its (L, lanes) inputs and per-step factors; spare lanes
// (count < kLanes) repeat the last channel and, in the backward, get a zero output gradient so
// they contribute nothing.
template <typename T>
void load_lanes(const Dims& s, const ScanArgs<T>& in, const ItemPlace& at, LaneItem<T>& item,
                LaneScratch<T>& w, bool backward) {
  const int64_t N = s.n_state, L = s.length, g = at.first / s.per_group;
  item.count = at.count;
  item.bt = in.Bt + (at.b * s.groups + g) * L * N;
  item.ct = in.Ct + (at.b * s.groups + g) * L * N;
  item.bc_step = N;
  load_lane_params(N, at.first, in.A, in.D, in.bias, item);
  to_lanes(s, at, in.u, false, w.u.data());
  to_lanes(s, at, in.delta, false, w.dt.data());  // delta, then dt in place
  to_lanes(s, at, in.z, false, w.gate.data());    // z, then the gate in place
  if (backward) to_lanes(s, at, in.grad, true, w.grad.data());
  lane_factors(L, item, w, backward);
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
      const ItemPlace at = locate_item(s, i);
      load_lanes(s, in, at, item, w, false);
      recurrence_lanes<T, kN>(s.n_state, s.length, item, w, false);
      for (int64_t l = 0; l < at.count; ++l) {
        T* row = pout + (at.b * s.dim + at.first + l) * s.length;
        for (int64_t t = 0; t < s.length; ++t) row[t] = w.y[t * kLanes + l] * w.gate[t * kLanes + l];
      }
    }
  });
}

template <typename T, int64_t kN>
std::vector<at::Tensor> backward_impl(const Dims& s, const at::Tensor& grad, const at::Tensor& u,
                                      const at::Tensor& delta, const at::Tensor& A, const at::Tensor& Bt,
                                      const at::Tensor& Ct, const at::Tensor& D, const at::Tensor& z,
                                      const at::Tensor& bias) {
  const int64_t N = s.n_state, L = s.length;
  const int64_t chunks = (s.per_group + kLanes - 1) / kLanes;
  auto du = at::empty_like(u), ddelta = at::empty_like(u), dz = at::empty_like(u);
  const ParamGradShares<T> param_shares(s.batch, s.dim, N, u.options());
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
  T *pdB = dB.data_ptr<T>(), *pdC = dC.data_ptr<T>();

  at::parallel_for(0, s.batch * s.groups, 1, [&](int64_t begin, int64_t end) {
    LaneScratch<T> w(L, N, true);
    LaneItem<T> item;
    LaneParamGrads<T> grads;
    for (int64_t bg = begin; bg < end; ++bg) {
      std::fill(w.dB.begin(), w.dB.end(), T(0));
      std::fill(w.dC.begin(), w.dC.end(), T(0));
      for (int64_t i = bg * chunks; i < (bg + 1) * chunks; ++i) {
        const ItemPlace at = locate_item(s, i);
        load_lanes(s, in, at, item, w, true);
        recurrence_lanes<T, kN>(N, L, item, w, true);
        backward_lanes<T, kN>(N, L, item, w, grads);
        for (int64_t l = 0; l < at.count; ++l) {
          const int64_t bd = at.b * s.dim + at.first + l;
          from_lane(w.du.data(), L, l, pdu + bd * L);
          from_lane(w.ddelta.data(), L, l, pddelta + bd * L);
          from_lane(w.dz.data(), L, l, pdz + bd * L);
        }
        param_shares.store(grads, at.count, at.b * s.dim + at.first);
      }
      sum_lanes(w.dB, L, N, pdB + bg * N * L, 1, L);
      sum_lanes(w.dC, L, N, pdC + bg * N * L, 1, L);
    }
  });

  const auto params = param_shares.totals();
  return {du, ddelta, params.dA, dB, dC, params.dD, dz, params.dbias};
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
