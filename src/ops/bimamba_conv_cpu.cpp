// CPU kernels of vimvq::bimamba_conv: both depthwise convolutions of a bimamba-v2 mixer and their
// SiLU, over token-major rows, vectorized across channels. The backward recomputes the
// pre-activations (K multiply-adds a value) rather than keeping them.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "src/ops/batch_shares.h"
#include "vimvq/ops/bimamba.h"

namespace vimvq::ops {
namespace {

struct ConvDims {
  int64_t batch, length, width, taps;  // width: E
};

// One call's inputs: x rows (token stride row_stride), the taps transposed to (K, 2E) so that a tap
// of consecutive channels is contiguous, and the bias (2E).
template <typename T>
struct ConvArgs {
  const T* x;
  int64_t batch_stride, row_stride;
  const T *taps, *bias;
};

// Pre-activations of token t of batch row b, both directions: pre[c] for c < E (causal, x[t-K+1 ..
// t]) and pre[E + c] (anti-causal, x[t .. t+K-1] with the taps reversed).
template <typename T>
void pre_activations(const ConvDims& s, const ConvArgs<T>& in, int64_t b, int64_t t, T* pre) {
  const int64_t E = s.width, K = s.taps, L = s.length;
  const T* rows = in.x + b * in.batch_stride;
  std::copy(in.bias, in.bias + 2 * E, pre);
  for (int64_t k = 0; k < K; ++k) {
    const int64_t back = t + k - (K - 1), ahead = t + (K - 1) - k;
    if (back >= 0) {
      const T *xr = rows + back * in.row_stride, *w = in.taps + k * 2 * E;
#pragma omp simd
      for (int64_t c = 0; c < E; ++c) pre[c] += w[c] * xr[c];
    }
    if (ahead < L) {
      const T *xr = rows + ahead * in.row_stride, *w = in.taps + k * 2 * E + E;
#pragma omp simd
      for (int64_t c = 0; c < E; ++c) pre[E + c] += w[c] * xr[c];
    }
  }
}

template <typename T>
void forward_impl(const ConvDims& s, const ConvArgs<T>& in, T* out) {
  const int64_t E2 = 2 * s.width;
  at::parallel_for(0, s.batch * s.length, 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      T* pre = out + i * E2;
      pre_activations(s, in, i / s.length, i % s.length, pre);
#pragma omp simd
      for (int64_t c = 0; c < E2; ++c) pre[c] = pre[c] / (T(1) + std::exp(-pre[c]));
    }
  });
}

// Per batch row: the pre-activation gradients of the whole sequence, then dx row by row, and the
// row's shares of the tap and bias gradients (summed over the batch afterwards, in order).
template <typename T>
void backward_impl(const ConvDims& s, const ConvArgs<T>& in, const T* grad, T* dx, T* dtaps_shares,
                   T* dbias_shares) {
  const int64_t E = s.width, E2 = 2 * E, K = s.taps, L = s.length;
  at::parallel_for(0, s.batch, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> dpre(L * E2);
    for (int64_t b = begin; b < end; ++b) {
      for (int64_t t = 0; t < L; ++t) {
        T* d = dpre.data() + t * E2;
        pre_activations(s, in, b, t, d);
        const T* g = grad + (b * L + t) * E2;
#pragma omp simd
        for (int64_t c = 0; c < E2; ++c) {
          const T sig = T(1) / (T(1) + std::exp(-d[c]));
          d[c] = g[c] * sig * (T(1) + d[c] * (T(1) - sig));
        }
      }
      const T* rows = in.x + b * in.batch_stride;
      T* dtaps = dtaps_shares + b * K * E2;
      T* dbias = dbias_shares + b * E2;
      std::fill(dtaps, dtaps + K * E2, T(0));
      std::fill(dbias, dbias + E2, T(0));
      for (int64_t t = 0; t < L; ++t) {
        const T* d = dpre.data() + t * E2;
        T* dxr = dx + (b * L + t) * E;
        std::fill(dxr, dxr + E, T(0));
        for (int64_t k = 0; k < K; ++k) {
          // x[t] feeds the causal output t + K-1-k and the anti-causal output t - (K-1) + k through tap k.
          const int64_t causal = t + (K - 1) - k, anti = t - (K - 1) + k;
          const T* w = in.taps + k * E2;
          if (causal < L) {
            const T* dc = dpre.data() + causal * E2;
#pragma omp simd
            for (int64_t c = 0; c < E; ++c) dxr[c] += w[c] * dc[c];
          }
          if (anti >= 0) {
            const T* da = dpre.data() + anti * E2 + E;
#pragma omp simd
            for (int64_t c = 0; c < E; ++c) dxr[c] += w[E + c] * da[c];
          }
          // Tap k of output t reads x[t + k - (K-1)] (causal) and x[t + (K-1) - k] (anti-causal).
          const int64_t back = t + k - (K - 1), ahead = t + (K - 1) - k;
          T* dw = dtaps + k * E2;
          if (back >= 0) {
            const T* xb = rows + back * in.row_stride;
#pragma omp simd
            for (int64_t c = 0; c < E; ++c) dw[c] += d[c] * xb[c];
          }
          if (ahead < L) {
            const T* xa = rows + ahead * in.row_stride;
#pragma omp simd
            for (int64_t c = 0; c < E; ++c) dw[E + c] += d[E + c] * xa[c];
          }
        }
#pragma omp simd
        for (int64_t c = 0; c < E2; ++c) dbias[c] += d[c];
      }
    }
  });
}

ConvDims dims_of(const at::Tensor& x, const at::Tensor& weight) {
  return {x.size(0), x.size(1), x.size(2), weight.size(1)};
}

at::Tensor rows_of(const at::Tensor& x) { return x.stride(2) == 1 ? x : x.contiguous(); }

template <typename T>
ConvArgs<T> args_of(const at::Tensor& x, const at::Tensor& taps, const at::Tensor& bias) {
  return {x.data_ptr<T>(), x.stride(0), x.stride(1), taps.data_ptr<T>(), bias.data_ptr<T>()};
}

}  // namespace

at::Tensor bimamba_conv_forward_cpu(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  check_bimamba_conv_inputs(x, weight, bias);
  const ConvDims s = dims_of(x, weight);
  const auto xr = rows_of(x), taps = weight.t().contiguous(), biasc = bias.contiguous();
  auto out = at::empty({s.batch, s.length, 2 * s.width}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "bimamba_conv_forward_cpu", [&] {
    forward_impl<scalar_t>(s, args_of<scalar_t>(xr, taps, biasc), out.data_ptr<scalar_t>());
  });
  return out;
}

std::vector<at::Tensor> bimamba_conv_backward_cpu(const at::Tensor& grad_out, const at::Tensor& x,
                                                  const at::Tensor& weight, const at::Tensor& bias) {
  check_bimamba_conv_inputs(x, weight, bias);
  const ConvDims s = dims_of(x, weight);
  TORCH_CHECK(grad_out.dim() == 3 && grad_out.size(0) == s.batch && grad_out.size(1) == s.length &&
                  grad_out.size(2) == 2 * s.width,
              "bimamba_conv backward: grad must be (batch, L, 2E), got ", grad_out.sizes());
  const auto xr = rows_of(x), taps = weight.t().contiguous(), biasc = bias.contiguous();
  const auto grad = grad_out.contiguous().to(x.scalar_type());
  auto dx = at::empty({s.batch, s.length, s.width}, x.options());
  auto dtaps_shares = at::empty({s.batch, s.taps, 2 * s.width}, x.options());
  auto dbias_shares = at::empty({s.batch, 2 * s.width}, x.options());
  at::Tensor dtaps, dbias;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "bimamba_conv_backward_cpu", [&] {
    backward_impl<scalar_t>(s, args_of<scalar_t>(xr, taps, biasc), grad.data_ptr<scalar_t>(),
                            dx.data_ptr<scalar_t>(), dtaps_shares.data_ptr<scalar_t>(),
                            dbias_shares.data_ptr<scalar_t>());
    dtaps = sum_batch_shares<scalar_t>(dtaps_shares);
    dbias = sum_batch_shares<scalar_t>(dbias_shares);
  });
  return {dx, dtaps.t().contiguous(), dbias};
}

}  // namespace vimvq::ops
