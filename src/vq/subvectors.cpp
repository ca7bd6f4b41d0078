#include "vimvq/vq/subvectors.h"

#include <ATen/ATen.h>

#include "vimvq/util/error.h"

namespace vimvq::vq {

at::Tensor to_subvectors(const at::Tensor& weight, int d) {
  if (d < 1) throw Error("sub-vector length must be positive");
  const at::Tensor flat = weight.reshape({-1});
  const int64_t n_sub = (flat.numel() + d - 1) / d;
  const int64_t pad = n_sub * d - flat.numel();
  const at::Tensor padded = pad ? at::cat({flat, at::zeros({pad}, flat.options())}) : flat;
  return padded.view({n_sub, d});
}

at::Tensor from_subvectors(const at::Tensor& subvectors, at::IntArrayRef shape) {
  int64_t numel = 1;
  for (auto s : shape) numel *= s;
  if (subvectors.numel() < numel) throw Error("from_subvectors: too few values for the shape");
  return subvectors.reshape({-1}).slice(0, 0, numel).view(shape);
}

at::Tensor subvector_importance(const at::Tensor& channel_importance, at::IntArrayRef shape, int d) {
  if (shape.size() != 2) throw Error("subvector_importance: weight must be 2-D");
  const int64_t out = shape[0], in = shape[1];
  if (channel_importance.numel() != in) {
    throw Error("subvector_importance: " + std::to_string(channel_importance.numel()) +
                " channel importances for " + std::to_string(in) + " input features");
  }
  const at::Tensor per_element = channel_importance.reshape({1, in}).expand({out, in}).to(at::kFloat);
  return to_subvectors(per_element.contiguous(), d);
}

at::Tensor channel_square_sums(const at::Tensor& layer_inputs) {
  // One contiguous float64 copy (a copy even of a float64 input, which is then squared in place):
  // a strided input (the transposed activations the mixer hands to x_proj) is not copied a second
  // time, and no second float64 tensor exists.
  const at::Tensor x =
      layer_inputs.to(at::kDouble, /*non_blocking=*/false, /*copy=*/true, at::MemoryFormat::Contiguous);
  return x.square_().reshape({-1, layer_inputs.size(-1)}).sum(0);
}

at::Tensor channel_importance(const at::Tensor& layer_inputs) {
  const int64_t rows = layer_inputs.numel() / layer_inputs.size(-1);
  return (channel_square_sums(layer_inputs) / static_cast<double>(rows)).to(at::kFloat);
}

}  // namespace vimvq::vq
