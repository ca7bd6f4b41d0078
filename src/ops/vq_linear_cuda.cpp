// vimvq::vq_linear on CUDA: the layer's weight decoded into a transient scratch buffer (one layer
// at a time, never the whole model), then one cuBLAS product through at::linear.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "src/ops/vq_decode_cuda.h"
#include "vimvq/ops/vq_linear.h"

namespace vimvq::ops {
namespace {

at::Tensor vq_linear_cuda(const at::Tensor& x, const at::Tensor& codes, const at::Tensor& codebook,
                          int64_t rows, int64_t cols, int64_t d, int64_t groups,
                          const c10::optional<at::Tensor>& bias) {
  TORCH_CHECK(x.is_cuda() && codes.is_cuda() && codebook.is_cuda(), "vq_linear: all operands on the GPU");
  const VqLayout l = vq_layout(rows, cols, d, groups, codebook);
  check_vq_operands(codes, codebook, l);
  at::Tensor weight = at::empty({rows, cols}, x.options());
  cuda::decode(codes.data_ptr<uint8_t>(), codebook.data_ptr<float>(), rows * cols, l.d, l.k, groups,
               weight.data_ptr<float>(), c10::cuda::getCurrentCUDAStream().stream());
  return at::linear(x, weight, bias);
}

}  // namespace
}  // namespace vimvq::ops

TORCH_LIBRARY_IMPL(vimvq, CUDA, m) { m.impl("vq_linear", &vimvq::ops::vq_linear_cuda); }
