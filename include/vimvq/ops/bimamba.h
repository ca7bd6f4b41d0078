// Token-major operators of a bimamba-v2 mixer (docs/VIM.md, "The native operators"): both scan
// directions and both depthwise convolutions read and write (batch, L, channels) activations, the
// layout the linear layers produce and take, so the mixer needs no transposition, flip or
// concatenation of a full activation. Registered as torch.ops.vimvq.bimamba_scan and
// torch.ops.vimvq.bimamba_conv, with autograd; CPU kernels, and on other devices a composite of
// vimvq::selective_scan and ATen operators.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

namespace vimvq::ops {

// bimamba_scan(u, delta, A, B, C, D, z, delta_bias) -> (batch, L, E)
//   u, delta: (batch, L, 2E)   A: (2E, N)   B, C: (batch, 2, L, N)   D, delta_bias: (2E)
//   z: (batch, L, E)
// Channels [0, E) are the forward direction (steps t = 0 .. L-1, B[:, 0], C[:, 0]); channels
// [E, 2E) the backward one (steps t = L-1 .. 0, B[:, 1], C[:, 1]), both in token order. Each is
// selective_scan's recurrence gated by SiLU(z) at its token; the result is their mean.
at::Tensor bimamba_scan_forward_cpu(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A,
                                    const at::Tensor& B, const at::Tensor& C, const at::Tensor& D,
                                    const at::Tensor& z, const at::Tensor& delta_bias);
// Gradients for (u, delta, A, B, C, D, z, delta_bias), in that order.
std::vector<at::Tensor> bimamba_scan_backward_cpu(const at::Tensor& grad_out, const at::Tensor& u,
                                                  const at::Tensor& delta, const at::Tensor& A,
                                                  const at::Tensor& B, const at::Tensor& C,
                                                  const at::Tensor& D, const at::Tensor& z,
                                                  const at::Tensor& delta_bias);
// The same through vimvq::selective_scan on the device of the inputs.
at::Tensor bimamba_scan_forward_composite(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A,
                                          const at::Tensor& B, const at::Tensor& C, const at::Tensor& D,
                                          const at::Tensor& z, const at::Tensor& delta_bias);
std::vector<at::Tensor> bimamba_scan_backward_composite(const at::Tensor& grad_out, const at::Tensor& u,
                                                        const at::Tensor& delta, const at::Tensor& A,
                                                        const at::Tensor& B, const at::Tensor& C,
                                                        const at::Tensor& D, const at::Tensor& z,
                                                        const at::Tensor& delta_bias);
// Throws a c10::Error naming the offending argument when shapes, dtypes or devices disagree.
void check_bimamba_scan_inputs(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A,
                               const at::Tensor& B, const at::Tensor& C, const at::Tensor& D,
                               const at::Tensor& z, const at::Tensor& delta_bias);

// bimamba_conv(x, weight, bias) -> (batch, L, 2E)
//   x: (batch, L, E)   weight: (2E, K)   bias: (2E)
// Channels [0, E): SiLU of the causal depthwise convolution of x with weight[c], plus bias[c]
// (F.conv1d with padding K-1, cut to L); channels [E, 2E): the same on the reversed sequence,
// given back in token order: out[t] = SiLU(bias + sum_k weight[k] x[t + K-1-k]).
at::Tensor bimamba_conv_forward_cpu(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);
// Gradients for (x, weight, bias).
std::vector<at::Tensor> bimamba_conv_backward_cpu(const at::Tensor& grad_out, const at::Tensor& x,
                                                  const at::Tensor& weight, const at::Tensor& bias);
// The same from ATen operators, on any device.
at::Tensor bimamba_conv_forward_composite(const at::Tensor& x, const at::Tensor& weight,
                                          const at::Tensor& bias);
std::vector<at::Tensor> bimamba_conv_backward_composite(const at::Tensor& grad_out, const at::Tensor& x,
                                                        const at::Tensor& weight, const at::Tensor& bias);
void check_bimamba_conv_inputs(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);

}  // namespace vimvq::ops
