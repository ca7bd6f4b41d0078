// Weight <-> sub-vectors (docs/METHOD.md section 1): d consecutive values of the row-major flattened
// weight; the flattened tail is zero-padded to a whole sub-vector. Importances follow the input
// channel of each position (h_c = mean x_c^2 over the layer's calibration inputs).
#pragma once

#include <ATen/core/Tensor.h>

namespace vimvq::vq {

// (n_sub, d); padded positions are zero.
at::Tensor to_subvectors(const at::Tensor& weight, int d);

// Inverse of to_subvectors: drops the padding and restores `shape`.
at::Tensor from_subvectors(const at::Tensor& subvectors, at::IntArrayRef shape);

// Per-position importance (n_sub, d) for a 2-D weight (out, in) from per-input-channel h (in):
// position i of the flattened weight reads h[i % in]; padded positions get 0 (they never count).
at::Tensor subvector_importance(const at::Tensor& channel_importance, at::IntArrayRef shape, int d);

// sum over rows of x_c^2 for layer inputs x (..., in_features), in float64: what a pass over the
// calibration set in slices accumulates.
at::Tensor channel_square_sums(const at::Tensor& layer_inputs);

// h_c = mean over rows of x_c^2 for layer inputs x (..., in_features), in float64 then float32.
at::Tensor channel_importance(const at::Tensor& layer_inputs);

}  // namespace vimvq::vq
