#include "vimvq/vq/quantized_weight.h"

#include <ATen/ATen.h>

#include "vimvq/vq/subvectors.h"

namespace vimvq::vq {

at::Tensor QuantizedWeight::dequantize() const {
  const int64_t n_sub = static_cast<int64_t>(codes.size());
  const at::Tensor group = at::arange(n_sub, at::kLong).floor_divide(n_sub / groups);
  const at::Tensor index = group * k + at::tensor(codes, at::kLong);
  return from_subvectors(codebook.to(at::kCPU).to(at::kHalf).to(at::kFloat).index_select(0, index), shape)
      .contiguous();
}

LayerPlan QuantizedWeight::plan() const {
  LayerPlan p;
  p.numel = 1;
  for (int64_t s : shape) p.numel *= s;
  p.groups = groups;
  p.k = k;
  p.d = d;
  p.code_bits = code_bits;
  return p;
}

}  // namespace vimvq::vq
