// The size ledger: what one quantized layer takes (index bits, codebook bits, packed bytes) for a
// method and width, planned before any work (dry run, inspect) and checked against what a run
// produced and what the writer wrote. docs/METHOD.md section 1 gives the accounting.
#pragma once

#include <cstdint>
#include <vector>

#include "vimvq/vq/method.h"

namespace vimvq::vq {

struct LayerPlan {
  int64_t numel = 0;   // weights of the layer
  int64_t groups = 1;  // codebooks: 1 shared (VQ) or one per output row (rtn's level tables)
  int64_t k = 0;       // codewords per codebook
  int d = 0;           // sub-vector length
  int code_bits = 0;   // bits per packed code
  int64_t n_sub() const { return (numel + d - 1) / d; }
  int64_t index_bits() const { return n_sub() * code_bits; }
  // Codebooks are stored in fp16. rtn's per-row scale and offset live inside its level tables,
  // so no method stores separate scale bits.
  int64_t codebook_bits() const { return 16 * groups * k * d; }
  int64_t code_bytes() const { return (index_bits() + 7) / 8; }
  int64_t codebook_bytes() const { return codebook_bits() / 8; }
  bool operator==(const LayerPlan& o) const {
    return numel == o.numel && groups == o.groups && k == o.k && d == o.d && code_bits == o.code_bits;
  }
  bool operator!=(const LayerPlan& o) const { return !(*this == o); }
};

// max_codewords: the VQ methods' codebook cap (vq_shape); rtn takes none. Throws vimvq::Error for
// an unsupported width or a weight that is not 2-D.
LayerPlan plan_layer(Method method, int bits, const std::vector<int64_t>& shape, int64_t max_codewords = 0);

// Sums of plans: bits per weight over the quantized weights.
struct SizeTotals {
  int64_t weights = 0, index_bits = 0, codebook_bits = 0;
  void add(const LayerPlan& plan);
  double index_bpw() const { return weights ? static_cast<double>(index_bits) / weights : 0; }
  double codebook_bpw() const { return weights ? static_cast<double>(codebook_bits) / weights : 0; }
  double effective_bpw() const { return index_bpw() + codebook_bpw(); }
  // Bytes of a model whose other parameters take `rest_bytes` each (the packed file adds its
  // archive framing, deflated).
  int64_t model_bytes(int64_t other_parameters, int rest_bytes) const {
    return (index_bits + codebook_bits + other_parameters * rest_bytes * 8 + 7) / 8;
  }
};

}  // namespace vimvq::vq
