// The bimamba operators' input checks, and their composite forms: ATen operators plus
// vimvq::selective_scan on the inputs' device. The composites are what devices without a
// token-major kernel run (CUDA), and the CPU kernels' reference in the tests.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <vector>

#include "vimvq/ops/bimamba.h"

namespace vimvq::ops {
namespace {

using ScanSignature = at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                 const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&);
using ScanBackwardSignature = std::vector<at::Tensor>(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                      const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                      const at::Tensor&, const at::Tensor&,
                                                      const at::Tensor&);

// (batch, L, 2E) token-major, directions side by side -> (batch, 2E, L) channel-major with the
// backward direction's steps in its own scan order (reversed tokens): selective_scan's layout.
at::Tensor to_scan_layout(const at::Tensor& t, int64_t width) {
  const auto cm = t.transpose(1, 2);
  return at::cat({cm.narrow(1, 0, width), cm.narrow(1, width, width).flip(2)}, 1);
}

// And back.
at::Tensor from_scan_layout(const at::Tensor& t, int64_t width) {
  return at::cat({t.narrow(1, 0, width), t.narrow(1, width, width).flip(2)}, 1).transpose(1, 2).contiguous();
}

// B or C (batch, 2, L, N) token order -> (batch, 2, N, L), the backward direction in its scan order.
at::Tensor bc_to_scan_layout(const at::Tensor& t) {
  return at::stack({t.select(1, 0), t.select(1, 1).flip(1)}, 1).transpose(2, 3);
}

at::Tensor bc_from_scan_layout(const at::Tensor& t) {
  const auto tm = t.transpose(2, 3);
  return at::stack({tm.select(1, 0), tm.select(1, 1).flip(1)}, 1).contiguous();
}

// z (batch, L, E) -> the gate of both directions, (batch, 2E, L) in scan order.
at::Tensor gate_to_scan_layout(const at::Tensor& z) {
  const auto cm = z.transpose(1, 2);
  return at::cat({cm, cm.flip(2)}, 1);
}

}  // namespace

void check_bimamba_scan_inputs(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A,
                               const at::Tensor& B, const at::Tensor& C, const at::Tensor& D,
                               const at::Tensor& z, const at::Tensor& delta_bias) {
  TORCH_CHECK(z.dim() == 3, "bimamba_scan: z must be (batch, L, E), got ", z.sizes());
  const int64_t batch = z.size(0), length = z.size(1), width = z.size(2);
  TORCH_CHECK(u.dim() == 3 && u.size(0) == batch && u.size(1) == length && u.size(2) == 2 * width,
              "bimamba_scan: u must be (batch, L, 2E) = (", batch, ", ", length, ", ", 2 * width, "), got ",
              u.sizes());
  TORCH_CHECK(delta.sizes() == u.sizes(), "bimamba_scan: delta must have u's shape ", u.sizes(), ", got ",
              delta.sizes());
  TORCH_CHECK(A.dim() == 2 && A.size(0) == 2 * width, "bimamba_scan: A must be (2E, N), got ", A.sizes());
  const int64_t n_state = A.size(1);
  TORCH_CHECK(n_state >= 1 && n_state <= 64, "bimamba_scan: N must be in 1..64, got ", n_state);
  TORCH_CHECK(
      B.dim() == 4 && B.size(0) == batch && B.size(1) == 2 && B.size(2) == length && B.size(3) == n_state,
      "bimamba_scan: B must be (batch, 2, L, N), got ", B.sizes());
  TORCH_CHECK(C.sizes() == B.sizes(), "bimamba_scan: C must have B's shape ", B.sizes(), ", got ", C.sizes());
  TORCH_CHECK(D.dim() == 1 && D.size(0) == 2 * width, "bimamba_scan: D must be (2E)");
  TORCH_CHECK(delta_bias.dim() == 1 && delta_bias.size(0) == 2 * width,
              "bimamba_scan: delta_bias must be (2E)");
  for (const at::Tensor* t : {&delta, &A, &B, &C, &D, &z, &delta_bias}) {
    TORCH_CHECK(t->scalar_type() == u.scalar_type(), "bimamba_scan: all inputs must share u's dtype ",
                u.scalar_type());
    TORCH_CHECK(t->device() == u.device(), "bimamba_scan: all inputs must be on u's device");
  }
}

void check_bimamba_conv_inputs(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  TORCH_CHECK(x.dim() == 3, "bimamba_conv: x must be (batch, L, E), got ", x.sizes());
  TORCH_CHECK(weight.dim() == 2 && weight.size(0) == 2 * x.size(2) && weight.size(1) >= 1,
              "bimamba_conv: weight must be (2E, K) with 2E = ", 2 * x.size(2), ", got ", weight.sizes());
  TORCH_CHECK(bias.dim() == 1 && bias.size(0) == weight.size(0), "bimamba_conv: bias must be (2E)");
  for (const at::Tensor* t : {&weight, &bias}) {
    TORCH_CHECK(t->scalar_type() == x.scalar_type(), "bimamba_conv: all inputs must share x's dtype");
    TORCH_CHECK(t->device() == x.device(), "bimamba_conv: all inputs must be on x's device");
  }
}

at::Tensor bimamba_scan_forward_composite(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A,
                                          const at::Tensor& B, const at::Tensor& C, const at::Tensor& D,
                                          const at::Tensor& z, const at::Tensor& delta_bias) {
  check_bimamba_scan_inputs(u, delta, A, B, C, D, z, delta_bias);
  static auto scan =
      c10::Dispatcher::singleton().findSchemaOrThrow("vimvq::selective_scan", "").typed<ScanSignature>();
  const int64_t width = z.size(2);
  const auto y = scan.call(to_scan_layout(u, width), to_scan_layout(delta, width), A, bc_to_scan_layout(B),
                           bc_to_scan_layout(C), D, gate_to_scan_layout(z), delta_bias);
  return (y.narrow(1, 0, width) + y.narrow(1, width, width).flip(2)).mul(0.5).transpose(1, 2).contiguous();
}

std::vector<at::Tensor> bimamba_scan_backward_composite(const at::Tensor& grad_out, const at::Tensor& u,
                                                        const at::Tensor& delta, const at::Tensor& A,
                                                        const at::Tensor& B, const at::Tensor& C,
                                                        const at::Tensor& D, const at::Tensor& z,
                                                        const at::Tensor& delta_bias) {
  check_bimamba_scan_inputs(u, delta, A, B, C, D, z, delta_bias);
  static auto scan_backward = c10::Dispatcher::singleton()
                                  .findSchemaOrThrow("vimvq::selective_scan_backward", "")
                                  .typed<ScanBackwardSignature>();
  const int64_t width = z.size(2);
  const auto grad = gate_to_scan_layout(grad_out.to(u.scalar_type())).mul(0.5);
  const auto g =
      scan_backward.call(grad, to_scan_layout(u, width), to_scan_layout(delta, width), A,
                         bc_to_scan_layout(B), bc_to_scan_layout(C), D, gate_to_scan_layout(z), delta_bias);
  const auto dz = g[6].narrow(1, 0, width) + g[6].narrow(1, width, width).flip(2);
  return {from_scan_layout(g[0], width),
          from_scan_layout(g[1], width),
          g[2],
          bc_from_scan_layout(g[3]),
          bc_from_scan_layout(g[4]),
          g[5],
          dz.transpose(1, 2).contiguous(),
          g[7]};
}

namespace {

// One direction's depthwise convolution, pre-activation, channel-major (batch, E, L): causal on
// x, or (reverse) on the reversed sequence with its output reversed back into token order.
at::Tensor conv_direction(const at::Tensor& x_cm, const at::Tensor& taps, const at::Tensor& bias,
                          bool reverse) {
  const int64_t width = x_cm.size(1), length = x_cm.size(2), K = taps.size(1);
  const auto in = reverse ? x_cm.flip(2) : x_cm;
  const auto out = at::conv1d(in, taps.unsqueeze(1), bias, 1, K - 1, 1, width).narrow(2, 0, length);
  return reverse ? out.flip(2) : out;
}

// One direction's gradients (dx channel-major, dtaps (E, K), dbias (E)) from the pre-activation
// gradient dpre (batch, E, L) in token order.
std::vector<at::Tensor> conv_direction_backward(const at::Tensor& dpre, const at::Tensor& x_cm,
                                                const at::Tensor& taps, bool reverse) {
  const int64_t width = x_cm.size(1), K = taps.size(1);
  const auto in = reverse ? x_cm.flip(2) : x_cm;
  // The convolution's full output has L + K - 1 steps; the cut-off tail gets no gradient.
  const auto full = at::constant_pad_nd(reverse ? dpre.flip(2) : dpre, {0, K - 1});
  auto [dx, dw, db] = at::convolution_backward(full, in, taps.unsqueeze(1), std::vector<int64_t>{width}, {1},
                                               {K - 1}, {1}, false, {0}, width, {true, true, true});
  return {reverse ? dx.flip(2) : dx, dw.squeeze(1), db};
}

}  // namespace

at::Tensor bimamba_conv_forward_composite(const at::Tensor& x, const at::Tensor& weight,
                                          const at::Tensor& bias) {
  check_bimamba_conv_inputs(x, weight, bias);
  const int64_t width = x.size(2);
  const auto x_cm = x.transpose(1, 2);
  const auto pre =
      at::cat({conv_direction(x_cm, weight.narrow(0, 0, width), bias.narrow(0, 0, width), false),
               conv_direction(x_cm, weight.narrow(0, width, width), bias.narrow(0, width, width), true)},
              1);
  return at::silu(pre).transpose(1, 2).contiguous();
}

std::vector<at::Tensor> bimamba_conv_backward_composite(const at::Tensor& grad_out, const at::Tensor& x,
                                                        const at::Tensor& weight, const at::Tensor& bias) {
  check_bimamba_conv_inputs(x, weight, bias);
  const int64_t width = x.size(2);
  const auto x_cm = x.transpose(1, 2).contiguous();
  const auto w_f = weight.narrow(0, 0, width), w_b = weight.narrow(0, width, width);
  const auto pre = at::cat({conv_direction(x_cm, w_f, bias.narrow(0, 0, width), false),
                            conv_direction(x_cm, w_b, bias.narrow(0, width, width), true)},
                           1);
  const auto sig = at::sigmoid(pre);
  const auto dpre = grad_out.to(x.scalar_type()).transpose(1, 2) * sig * (1 + pre * (1 - sig));
  const auto f = conv_direction_backward(dpre.narrow(1, 0, width), x_cm, w_f, false);
  const auto b = conv_direction_backward(dpre.narrow(1, width, width), x_cm, w_b, true);
  return {(f[0] + b[0]).transpose(1, 2).contiguous(), at::cat({f[1], b[1]}, 0), at::cat({f[2], b[2]}, 0)};
}

}  // namespace vimvq::ops
