#include "vimvq/vq/quantized_weight.h"

#include <ATen/ATen.h>

#include "vimvq/vq/subvectors.h"

namespace vimvq::vq {

std::vector<uint8_t> code_bytes(const at::Tensor& codes) {
  const at::Tensor bytes = codes.to(at::kCPU).to(at::kByte).contiguous();
  return std::vector<uint8_t>(bytes.data_ptr<uint8_t>(), bytes.data_ptr<uint8_t>() + bytes.numel());
}

at::Tensor QuantizedWeight::codebook_rows() const {
  const int64_t n_sub = static_cast<int64_t>(codes.size());
  const at::Tensor group = at::arange(n_sub, at::kLong).floor_divide(n_sub / groups);
  return group * k + at::tensor(codes, at::kByte).to(at::kLong);
}

at::Tensor QuantizedWeight::dequantize() const {
  return from_subvectors(codebook.to(at::kCPU).to(at::kHalf).to(at::kFloat).index_select(0, codebook_rows()),
                         shape)
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
