// The soft sub-vectors of the convex-combination quantizer as one differentiable operation:
// w^_j = sum_i softmax(z_j)_i C[H_ji] for a free sub-vector, C[code_j] for a confirmed one
// (docs/METHOD.md section 4).
//
// Why fused: as tensor operations, each step gathers an (n_sub, n, d) copy of the hull members,
// multiplies and sums it, and its backward scatters n_sub * n rows into the codebook with
// index_add. At Vim-B widths (1.2 M sub-vectors a block) those temporaries are 64 MB each, and
// the scatter, the softmax over rows of 4 and the page faults of the temporaries showed among
// the largest costs of a step (docs/BENCHMARKS.md, "Scale"). On the CPU this runs row by row with no
// temporary (src/vq/convex_combination_cpu.cpp); other devices, and `fused_cpu = false`, run the
// tensor formulation.
#pragma once

#include <ATen/core/Tensor.h>

namespace vimvq::vq {

// logits (n_sub, n) float, codebook (k, d) float, hull (n_sub, n) int64, confirmed (n_sub) bool,
// codes (n_sub) int64. Differentiable in logits and codebook (a confirmed row's logits get zero
// gradient). The codebook gradient sums rows in a fixed chunk order, so it does not depend on
// the thread count.
at::Tensor convex_combination(const at::Tensor& logits, const at::Tensor& codebook, const at::Tensor& hull,
                              const at::Tensor& confirmed, const at::Tensor& codes, bool fused_cpu = true);

}  // namespace vimvq::vq
