// CUDA kernels of torch.ops.vimvq.selective_scan (built only when LibTorch has CUDA and nvcc is
// found). Checks and layouts here; the kernels are in selective_scan_cuda.cu.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "src/ops/selective_scan_cuda_kernels.h"
#include "vimvq/ops/bimamba.h"
#include "vimvq/ops/selective_scan.h"

namespace vimvq::ops {
namespace {

cuda::ScanDims dims_of(const at::Tensor& u, const at::Tensor& A, const at::Tensor& B) {
  return {u.size(0), u.size(1), u.size(2), A.size(1), B.size(1)};
}

at::Tensor forward_cuda(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A,
                        const at::Tensor& B, const at::Tensor& C, const at::Tensor& D, const at::Tensor& z,
                        const at::Tensor& delta_bias) {
  check_selective_scan_inputs(u, delta, A, B, C, D, z, delta_bias);
  const c10::cuda::CUDAGuard guard(u.device());
  auto uc = u.contiguous(), deltac = delta.contiguous(), Ac = A.contiguous(), zc = z.contiguous();
  auto Bt = time_major(B), Ct = time_major(C), Dc = D.contiguous(), biasc = delta_bias.contiguous();
  auto out = at::empty_like(uc);
  void* stream = c10::cuda::getCurrentCUDAStream().stream();
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "selective_scan_forward_cuda", [&] {
    cuda::scan_forward<scalar_t>(dims_of(u, A, B), uc.data_ptr<scalar_t>(), deltac.data_ptr<scalar_t>(),
                                 Ac.data_ptr<scalar_t>(), Bt.data_ptr<scalar_t>(), Ct.data_ptr<scalar_t>(),
                                 Dc.data_ptr<scalar_t>(), zc.data_ptr<scalar_t>(), biasc.data_ptr<scalar_t>(),
                                 out.data_ptr<scalar_t>(), stream);
  });
  return out;
}

std::vector<at::Tensor> backward_cuda(const at::Tensor& grad_out, const at::Tensor& u,
                                      const at::Tensor& delta, const at::Tensor& A, const at::Tensor& B,
                                      const at::Tensor& C, const at::Tensor& D, const at::Tensor& z,
                                      const at::Tensor& delta_bias) {
  check_selective_scan_backward_inputs(grad_out, u, delta, A, B, C, D, z, delta_bias);
  const c10::cuda::CUDAGuard guard(u.device());
  const auto s = dims_of(u, A, B);
  auto g = grad_out.contiguous().to(u.scalar_type()), uc = u.contiguous(), deltac = delta.contiguous();
  auto Ac = A.contiguous(), zc = z.contiguous(), Bt = time_major(B), Ct = time_major(C), Dc = D.contiguous();
  auto biasc = delta_bias.contiguous();
  auto states = at::empty({s.batch, s.length, s.n_state, s.dim}, uc.options());
  auto du = at::empty_like(uc), ddelta = at::empty_like(uc), dz = at::empty_like(uc);
  // Each thread's share of the shared gradients; summed below in a fixed order (no atomics).
  auto dB_shares = at::empty_like(states), dC_shares = at::empty_like(states);
  auto dA_shares = at::empty({s.batch, s.n_state, s.dim}, uc.options());
  auto dD_shares = at::empty({s.batch, s.dim}, uc.options()), dbias_shares = at::empty_like(dD_shares);
  void* stream = c10::cuda::getCurrentCUDAStream().stream();
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "selective_scan_backward_cuda", [&] {
    const cuda::BackwardShares<scalar_t> shares{
        dB_shares.data_ptr<scalar_t>(), dC_shares.data_ptr<scalar_t>(), dA_shares.data_ptr<scalar_t>(),
        dD_shares.data_ptr<scalar_t>(), dbias_shares.data_ptr<scalar_t>()};
    cuda::scan_backward<scalar_t>(
        s, g.data_ptr<scalar_t>(), uc.data_ptr<scalar_t>(), deltac.data_ptr<scalar_t>(),
        Ac.data_ptr<scalar_t>(), Bt.data_ptr<scalar_t>(), Ct.data_ptr<scalar_t>(), Dc.data_ptr<scalar_t>(),
        zc.data_ptr<scalar_t>(), biasc.data_ptr<scalar_t>(), states.data_ptr<scalar_t>(),
        du.data_ptr<scalar_t>(), ddelta.data_ptr<scalar_t>(), dz.data_ptr<scalar_t>(), shares, stream);
  });
  // (batch, L, N, dim) -> (batch, L, N, G, dim / G), summed over the group's channels -> (batch, G, N, L)
  const auto per_group = [&](const at::Tensor& shares) {
    return shares.view({s.batch, s.length, s.n_state, s.groups, s.dim / s.groups})
        .sum(4)
        .permute({0, 3, 2, 1})
        .contiguous();
  };
  return {du,
          ddelta,
          dA_shares.sum(0).t().contiguous(),
          per_group(dB_shares),
          per_group(dC_shares),
          dD_shares.sum(0),
          dz,
          dbias_shares.sum(0)};
}

}  // namespace
}  // namespace vimvq::ops

TORCH_LIBRARY_IMPL(vimvq, CUDA, m) {
  m.impl("selective_scan", &vimvq::ops::forward_cuda);
  m.impl("selective_scan_backward", &vimvq::ops::backward_cuda);
  // No token-major CUDA kernels: the composites lay the activations out for the kernels above.
  m.impl("bimamba_scan", &vimvq::ops::bimamba_scan_forward_composite);
  m.impl("bimamba_scan_backward", &vimvq::ops::bimamba_scan_backward_composite);
  m.impl("bimamba_conv", &vimvq::ops::bimamba_conv_forward_composite);
  m.impl("bimamba_conv_backward", &vimvq::ops::bimamba_conv_backward_composite);
}
