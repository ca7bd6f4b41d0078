// vimvq::vq_linear on CUDA: the layer's weight decoded into a transient scratch buffer (one layer
// at a time, never the whole model), then one cuBLAS product through at::linear.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "src/ops/vq_decode_cuda.h"

namespace vimvq::ops {
namespace {

at::Tensor vq_linear_cuda(const at::Tensor& x, const at::Tensor& codes, const at::Tensor& codebook,
                          int64_t rows, int64_t cols, int64_t d, int64_t groups,
                          const c10::optional<at::Tensor>& bias) {
  TORCH_CHECK(rows > 0 && cols > 0 && d > 0 && groups > 0 && codebook.dim() == 2 && codebook.size(1) == d &&
                  codebook.size(0) % groups == 0,
              "vq_linear: bad layout");
  const int64_t numel = rows * cols;
  TORCH_CHECK(
      codes.scalar_type() == at::kByte && codes.is_contiguous() && codes.numel() == (numel + d - 1) / d,
      "vq_linear: codes must be a contiguous uint8 vector of ceil(rows * cols / d) codes");
  TORCH_CHECK(codebook.scalar_type() == at::kFloat && codebook.is_contiguous(),
              "vq_linear: codebook must be float");
  TORCH_CHECK(x.is_cuda() && codes.is_cuda() && codebook.is_cuda(), "vq_linear: all operands on the GPU");
  const int64_t k = codebook.size(0) / groups;
  TORCH_CHECK(k >= 1 && k <= 256 && codebook.numel() == groups * k * d,
              "vq_linear: codebook must be (groups * k, d)");
  if (k < 256 && codes.numel() > 0)  // a code at or above k would read outside the codebook
    TORCH_CHECK(codes.max().item<uint8_t>() < k, "vq_linear: a code is not below k = ", k);
  at::Tensor weight = at::empty({rows, cols}, x.options());
  cuda::decode(codes.data_ptr<uint8_t>(), codebook.data_ptr<float>(), numel, static_cast<int>(d), k, groups,
               weight.data_ptr<float>(), c10::cuda::getCurrentCUDAStream().stream());
  return at::linear(x, weight, bias);
}

}  // namespace
}  // namespace vimvq::ops

TORCH_LIBRARY_IMPL(vimvq, CUDA, m) { m.impl("vq_linear", &vimvq::ops::vq_linear_cuda); }
