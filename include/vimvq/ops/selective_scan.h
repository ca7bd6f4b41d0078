// The native selective scan of Mamba (docs: scripts/vimlib/scan.py and docs/VIM.md).
//
// Shapes (mamba's selective_scan_fn layout, B and C grouped so that both directions of a
// bimamba-v2 mixer run as one call over 2E stacked channels):
//   u, delta, z: (batch, dim, L)   A: (dim, N)   B, C: (batch, G, N, L)   D, delta_bias: (dim)
// out = (sum_n h_t[n] C_t[n] + D u_t) * SiLU(z_t), h_t = exp(dt A) h_{t-1} + dt B_t u_t,
// dt = softplus(delta + delta_bias). Registered as torch.ops.vimvq.selective_scan, with autograd.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

namespace vimvq::ops {

at::Tensor selective_scan_forward_cpu(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A,
                                      const at::Tensor& B, const at::Tensor& C, const at::Tensor& D,
                                      const at::Tensor& z, const at::Tensor& delta_bias);

// Gradients for (u, delta, A, B, C, D, z, delta_bias), in that order.
std::vector<at::Tensor> selective_scan_backward_cpu(const at::Tensor& grad_out, const at::Tensor& u,
                                                    const at::Tensor& delta, const at::Tensor& A,
                                                    const at::Tensor& B, const at::Tensor& C,
                                                    const at::Tensor& D, const at::Tensor& z,
                                                    const at::Tensor& delta_bias);

// Throws a c10::Error naming the offending argument when shapes or dtypes disagree.
void check_selective_scan_inputs(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A,
                                 const at::Tensor& B, const at::Tensor& C, const at::Tensor& D,
                                 const at::Tensor& z, const at::Tensor& delta_bias);

// The same checks, and grad_out must have u's shape. Shared by the CPU and CUDA backward kernels.
void check_selective_scan_backward_inputs(const at::Tensor& grad_out, const at::Tensor& u,
                                          const at::Tensor& delta, const at::Tensor& A, const at::Tensor& B,
                                          const at::Tensor& C, const at::Tensor& D, const at::Tensor& z,
                                          const at::Tensor& delta_bias);

// B or C (batch, G, N, L) -> (batch, G, L, N) contiguous: each step reads N adjacent values. The
// layout both the CPU and the CUDA kernels read.
at::Tensor time_major(const at::Tensor& t);

}  // namespace vimvq::ops
