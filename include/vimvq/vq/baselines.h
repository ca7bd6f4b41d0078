// Baseline quantizers of docs/METHOD.md section 6 that need no calibration: rtn and plain VQ (kmeans).
#pragma once

#include <ATen/core/Tensor.h>

#include "vimvq/vq/kmeans.h"

namespace vimvq::vq {

// Per-output-channel (row) asymmetric uniform quantization with 2^bits levels:
// scale = (max - min) / (2^bits - 1), zero = round(-min / scale), q = clamp(round(w / scale) + zero),
// w' = (q - zero) * scale. Rows with max == min are kept exactly.
at::Tensor rtn_quantize(const at::Tensor& weight, int bits);

struct RtnResult {
  at::Tensor levels;  // (rows, 2^bits): the dequantized value of each level, per row
  at::Tensor codes;   // (numel) int64 level indices, row-major
};
RtnResult rtn_codes(const at::Tensor& weight, int bits);

struct VqResult {
  at::Tensor codebook;  // (k, d)
  at::Tensor codes;     // (n_sub)
  at::Tensor weight;    // dequantized, the weight's shape
};

// k-means codebook on the sub-vectors (weighted when importance is defined) and nearest codewords.
VqResult kmeans_quantize(const at::Tensor& weight, const at::Tensor& importance, int d,
                         const KMeansParams& params);

}  // namespace vimvq::vq
