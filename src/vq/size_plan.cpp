#include "vimvq/vq/size_plan.h"

#include <string>

#include "vimvq/util/error.h"
#include "vimvq/vq/layout.h"

namespace vimvq::vq {

LayerPlan plan_layer(Method method, int bits, const std::vector<int64_t>& shape, int64_t max_codewords) {
  if (shape.size() != 2)
    throw Error("only 2-D weights are quantized (got " + std::to_string(shape.size()) + "-D)");
  LayerPlan p;
  p.numel = shape[0] * shape[1];
  if (method == Method::kRtn) {
    if (bits < 1 || bits > 8) throw Error("rtn: unsupported bit width " + std::to_string(bits));
    if (max_codewords != 0) throw Error("rtn: its level tables take no codebook cap");
    p.groups = shape[0];
    p.k = int64_t{1} << bits;
    p.d = 1;
    p.code_bits = bits;
    return p;
  }
  const VqShape s = vq_shape(bits, p.numel, max_codewords);
  p.k = s.k;
  p.d = s.d;
  p.code_bits = s.code_bits;
  return p;
}

void SizeTotals::add(const LayerPlan& plan) {
  weights += plan.numel;
  index_bits += plan.index_bits();
  codebook_bits += plan.codebook_bits();
}

}  // namespace vimvq::vq
