// CPU kernels of vq::convex_combination (internal to src/vq): forward, and backward into the
// logits and the codebook. All tensors contiguous, float / int64 / bool as in convex_combination.h.
#pragma once

#include <ATen/core/Tensor.h>

namespace vimvq::vq::cpu {

at::Tensor convex_combination_forward(const at::Tensor& logits, const at::Tensor& codebook,
                                      const at::Tensor& hull, const at::Tensor& confirmed,
                                      const at::Tensor& codes);

// Either gradient is skipped (left undefined) when its flag is false.
std::pair<at::Tensor, at::Tensor> convex_combination_backward(
    const at::Tensor& grad, const at::Tensor& logits, const at::Tensor& codebook, const at::Tensor& hull,
    const at::Tensor& confirmed, const at::Tensor& codes, bool want_logits, bool want_codebook);

}  // namespace vimvq::vq::cpu
