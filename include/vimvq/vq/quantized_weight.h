// One quantized layer as it is stored: codebooks and codes, and its own dequantization.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "vimvq/vq/method.h"
#include "vimvq/vq/size_plan.h"

namespace vimvq::vq {

struct QuantizedWeight {
  std::string name;            // full parameter name, e.g. "layers.0.mixer.in_proj.weight"
  std::vector<int64_t> shape;  // of the weight
  Method method = Method::kVimvq;
  int64_t k = 0;      // codewords per codebook
  int d = 0;          // sub-vector length
  int code_bits = 0;  // bits per packed code: ceil(log2 k)
  // Codebooks: one shared by the layer (groups = 1, VQ), or one per equal run of consecutive
  // sub-vectors (rtn: groups = rows, d = 1, k = 2^bits levels per row).
  int64_t groups = 1;
  at::Tensor codebook;  // (groups * k, d) fp32 holding fp16 values (what is stored)
  // n_sub = ceil(numel / d) codes in [0, k), of group j / (n_sub / groups). One byte each: k is at
  // most 256, and a loaded model's codes are its largest part (int64 would be 8 times that).
  std::vector<uint8_t> codes;

  // codebook[group * k + code], flattened, cut to numel and reshaped: the layer's weight (CPU).
  at::Tensor dequantize() const;
  // group * k + code for each sub-vector: the codebook row it reads (int64, CPU).
  at::Tensor codebook_rows() const;
  // What this layer takes, in the ledger's terms.
  LayerPlan plan() const;
};

// A quantizer's int64 codes (each below 256) as QuantizedWeight keeps them.
std::vector<uint8_t> code_bytes(const at::Tensor& codes);

}  // namespace vimvq::vq
