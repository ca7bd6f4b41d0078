#include "vimvq/vq/layer_quantizer.h"

#include <ATen/ATen.h>

#include "src/vq/layer_quantizers.h"
#include "vimvq/vq/layout.h"
#include "vimvq/vq/subvectors.h"

namespace vimvq::vq {

at::Tensor stored_codebook(const at::Tensor& codebook) {
  return codebook.detach().to(at::kHalf).to(at::kFloat).to(at::kCPU);
}

std::unique_ptr<LayerQuantizer> make_layer_quantizer(const at::Tensor& weight,
                                                     const at::Tensor& channel_importance,
                                                     const LayerQuantizerOptions& options) {
  if (options.method == Method::kRtn) return make_rtn_quantizer(weight, options.bits);
  const VqShape shape = vq_shape(options.bits, weight.numel(), options.max_codewords);
  at::Tensor importance;
  if (channel_importance.defined())
    importance = subvector_importance(channel_importance, weight.sizes(), shape.d).to(weight.device());
  if (options.method == Method::kKmeans) return make_kmeans_quantizer(weight, importance, options);
  return make_convex_quantizer(weight, importance, options);
}

}  // namespace vimvq::vq
