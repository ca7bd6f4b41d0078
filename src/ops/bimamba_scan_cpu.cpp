// CPU kernels of vimvq::bimamba_scan: the lane core of src/ops/scan_lanes.h over token-major
// activations. A token's 16 consecutive channels are one contiguous load, so filling the lanes is
// a copy of rows rather than a transposition, and the backward direction is the same core reading
// its rows from the last token to the first.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "src/ops/scan_lanes.h"
#include "vimvq/ops/bimamba.h"

namespace vimvq::ops {
namespace {

using namespace lanes;

struct BiDims {
  int64_t batch, length, width, n_state;  // width: E, the channels of one direction
  int64_t chunks() const { return (width + kLanes - 1) / kLanes; }
};

// Pointers of one call; the per-channel inputs are (batch, L, channels) with row (token) strides.
template <typename T>
struct BiArgs {
  const T *u, *delta, *A, *Bt, *Ct, *D, *z, *bias, *grad;
  int64_t z_batch_stride, z_row_stride;
};

// Where an item's rows are: the first of its channels in a token row, and its direction.
struct RowPlace {
  int64_t b, first, count;
  bool reverse;
  int64_t token(int64_t step, int64_t length) const { return reverse ? length - 1 - step : step; }
};

// Direction g's B or C rows of batch row b, (L, N) time-major, in scan order: the first row and
// the step to the next (the backward direction reads its rows from the last).
struct BcRows {
  int64_t first, step;
};

BcRows bc_rows(const BiDims& s, int64_t b, int64_t g) {
  const int64_t L = s.length, N = s.n_state;
  return g == 1 ? BcRows{((b * 2 + g) * L + L - 1) * N, -N} : BcRows{(b * 2 + g) * L * N, N};
}

// An item's channels of rows base[token * row_stride + l] into (L, lanes), in scan order, times
// `scale`; spare lanes repeat the last channel, or are zero when `zero_spare`.
template <typename T>
void tokens_to_lanes(const RowPlace& at, int64_t length, const T* base, int64_t row_stride, T scale,
                     bool zero_spare, T* dst) {
  for (int64_t s = 0; s < length; ++s) {
    const T* src = base + at.token(s, length) * row_stride;
    T* lane = dst + s * kLanes;
    if (at.count == kLanes) {
#pragma omp simd
      for (int64_t l = 0; l < kLanes; ++l) lane[l] = scale * src[l];
      continue;
    }
    for (int64_t l = 0; l < kLanes; ++l) {
      const T value = l < at.count ? src[l] : (zero_spare ? T(0) : src[at.count - 1]);
      lane[l] = scale * value;
    }
  }
}

// The used lanes back into token rows, stored or added.
template <typename T>
void lanes_to_tokens(const RowPlace& at, int64_t length, const T* lanes, bool add, T* base,
                     int64_t row_stride) {
  for (int64_t s = 0; s < length; ++s) {
    T* dst = base + at.token(s, length) * row_stride;
    const T* lane = lanes + s * kLanes;
    if (add) {
#pragma omp simd
      for (int64_t l = 0; l < at.count; ++l) dst[l] += lane[l];
    } else {
      std::copy(lane, lane + at.count, dst);
    }
  }
}

// Direction g of the item at chunk `chunk` of batch b: its lane parameters, B and C, and the
// (L, lanes) inputs with their per-step factors.
template <typename T>
RowPlace load_direction(const BiDims& s, const BiArgs<T>& in, int64_t b, int64_t chunk, int64_t g,
                        LaneItem<T>& item, LaneScratch<T>& w, bool backward) {
  const int64_t E = s.width, L = s.length, N = s.n_state;
  const int64_t first = chunk * kLanes;
  const RowPlace at{b, first, std::min(kLanes, E - first), g == 1};
  item.count = at.count;
  const BcRows rows = bc_rows(s, b, g);
  item.bt = in.Bt + rows.first;
  item.ct = in.Ct + rows.first;
  item.bc_step = rows.step;
  load_lane_params(N, g * E + first, in.A, in.D, in.bias, item);
  const int64_t channel = b * L * 2 * E + g * E + first;
  tokens_to_lanes(at, L, in.u + channel, 2 * E, T(1), false, w.u.data());
  tokens_to_lanes(at, L, in.delta + channel, 2 * E, T(1), false, w.dt.data());  // delta, then dt in place
  tokens_to_lanes(at, L, in.z + b * in.z_batch_stride + first, in.z_row_stride, T(1), false, w.gate.data());
  // The output is the mean of the directions: each gets half the output gradient.
  if (backward) tokens_to_lanes(at, L, in.grad + b * L * E + first, E, T(0.5), true, w.grad.data());
  lane_factors(L, item, w, backward);
  return at;
}

template <typename T, int64_t kN>
void forward_impl(const BiDims& s, const BiArgs<T>& in, T* out) {
  const int64_t L = s.length, E = s.width;
  const int64_t grain = std::max<int64_t>(1, 128 / std::max<int64_t>(1, L));
  at::parallel_for(0, s.batch * s.chunks(), grain, [&](int64_t begin, int64_t end) {
    LaneScratch<T> w(L, s.n_state, false);
    LaneItem<T> item;
    for (int64_t i = begin; i < end; ++i) {
      const int64_t b = i / s.chunks(), chunk = i % s.chunks();
      for (int64_t g = 0; g < 2; ++g) {
        const RowPlace at = load_direction(s, in, b, chunk, g, item, w, false);
        recurrence_lanes<T, kN>(s.n_state, L, item, w, false);
        for (int64_t t = 0; t < L * kLanes; ++t) w.y[t] = T(0.5) * w.y[t] * w.gate[t];
        lanes_to_tokens(at, L, w.y.data(), g == 1, out + b * L * E + at.first, E);
      }
    }
  });
}

template <typename T, int64_t kN>
std::vector<at::Tensor> backward_impl(const BiDims& s, const BiArgs<T>& in,
                                      const at::TensorOptions& options) {
  const int64_t N = s.n_state, L = s.length, E = s.width;
  auto du = at::empty({s.batch, L, 2 * E}, options), ddelta = at::empty_like(du);
  auto dz = at::empty({s.batch, L, E}, options);
  const ParamGradShares<T> param_shares(s.batch, 2 * E, N, options);
  auto dB = at::empty({s.batch, 2, L, N}, options), dC = at::empty_like(dB);
  T *pdu = du.data_ptr<T>(), *pddelta = ddelta.data_ptr<T>(), *pdz = dz.data_ptr<T>();
  T *pdB = dB.data_ptr<T>(), *pdC = dC.data_ptr<T>();

  // One work item per batch row: its two directions in turn (dz is the sum of both), each
  // direction's lane chunks in order, then the one sum over lanes of dB and dC. A fixed order for
  // any thread count.
  at::parallel_for(0, s.batch, 1, [&](int64_t begin, int64_t end) {
    LaneScratch<T> w(L, N, true);
    LaneItem<T> item;
    LaneParamGrads<T> grads;
    for (int64_t b = begin; b < end; ++b) {
      for (int64_t g = 0; g < 2; ++g) {
        std::fill(w.dB.begin(), w.dB.end(), T(0));
        std::fill(w.dC.begin(), w.dC.end(), T(0));
        for (int64_t chunk = 0; chunk < s.chunks(); ++chunk) {
          const RowPlace at = load_direction(s, in, b, chunk, g, item, w, true);
          recurrence_lanes<T, kN>(N, L, item, w, true);
          backward_lanes<T, kN>(N, L, item, w, grads);
          const int64_t channel = b * L * 2 * E + g * E + at.first;
          lanes_to_tokens(at, L, w.du.data(), false, pdu + channel, 2 * E);
          lanes_to_tokens(at, L, w.ddelta.data(), false, pddelta + channel, 2 * E);
          lanes_to_tokens(at, L, w.dz.data(), g == 1, pdz + b * L * E + at.first, E);
          param_shares.store(grads, at.count, b * 2 * E + g * E + at.first);
        }
        const BcRows rows = bc_rows(s, b, g);
        sum_lanes(w.dB, L, N, pdB + rows.first, rows.step, 1);
        sum_lanes(w.dC, L, N, pdC + rows.first, rows.step, 1);
      }
    }
  });

  const auto params = param_shares.totals();
  return {du, ddelta, params.dA, dB, dC, params.dD, dz, params.dbias};
}

// The tensors the kernels read: dense where they index densely; z keeps its strides (it is a view
// of the input projection's output) as long as its channels are contiguous.
struct Dense {
  at::Tensor u, delta, A, B, C, D, z, bias;
};

Dense dense_inputs(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A, const at::Tensor& B,
                   const at::Tensor& C, const at::Tensor& D, const at::Tensor& z,
                   const at::Tensor& delta_bias) {
  return {u.contiguous(),
          delta.contiguous(),
          A.contiguous(),
          B.contiguous(),
          C.contiguous(),
          D.contiguous(),
          z.stride(2) == 1 ? z : z.contiguous(),
          delta_bias.contiguous()};
}

template <typename T>
BiArgs<T> args_of(const Dense& d, const T* grad) {
  return {d.u.data_ptr<T>(), d.delta.data_ptr<T>(), d.A.data_ptr<T>(),
          d.B.data_ptr<T>(), d.C.data_ptr<T>(),     d.D.data_ptr<T>(),
          d.z.data_ptr<T>(), d.bias.data_ptr<T>(),  grad,
          d.z.stride(0),     d.z.stride(1)};
}

BiDims dims_of(const at::Tensor& z, const at::Tensor& A) {
  return {z.size(0), z.size(1), z.size(2), A.size(1)};
}

}  // namespace

at::Tensor bimamba_scan_forward_cpu(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A,
                                    const at::Tensor& B, const at::Tensor& C, const at::Tensor& D,
                                    const at::Tensor& z, const at::Tensor& delta_bias) {
  check_bimamba_scan_inputs(u, delta, A, B, C, D, z, delta_bias);
  const BiDims s = dims_of(z, A);
  const Dense d = dense_inputs(u, delta, A, B, C, D, z, delta_bias);
  auto out = at::empty({s.batch, s.length, s.width}, u.options());
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "bimamba_scan_forward_cpu", [&] {
    const auto args = args_of<scalar_t>(d, nullptr);
    const auto run =
        s.n_state == kCommonState ? forward_impl<scalar_t, kCommonState> : forward_impl<scalar_t, 0>;
    run(s, args, out.data_ptr<scalar_t>());
  });
  return out;
}

std::vector<at::Tensor> bimamba_scan_backward_cpu(const at::Tensor& grad_out, const at::Tensor& u,
                                                  const at::Tensor& delta, const at::Tensor& A,
                                                  const at::Tensor& B, const at::Tensor& C,
                                                  const at::Tensor& D, const at::Tensor& z,
                                                  const at::Tensor& delta_bias) {
  check_bimamba_scan_inputs(u, delta, A, B, C, D, z, delta_bias);
  TORCH_CHECK(grad_out.sizes() == z.sizes(), "bimamba_scan backward: grad must have z's shape ", z.sizes(),
              ", got ", grad_out.sizes());
  const BiDims s = dims_of(z, A);
  const Dense d = dense_inputs(u, delta, A, B, C, D, z, delta_bias);
  const auto grad = grad_out.contiguous().to(u.scalar_type());
  std::vector<at::Tensor> grads;
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "bimamba_scan_backward_cpu", [&] {
    const auto args = args_of<scalar_t>(d, grad.data_ptr<scalar_t>());
    const auto run =
        s.n_state == kCommonState ? backward_impl<scalar_t, kCommonState> : backward_impl<scalar_t, 0>;
    grads = run(s, args, u.options());
  });
  return grads;
}

}  // namespace vimvq::ops
