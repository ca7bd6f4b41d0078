// Plain VQ as a LayerQuantizer: the weighted k-means codebook and nearest codewords
// (vq::kmeans_quantize), fixed at construction.
#include <ATen/ATen.h>

#include "src/vq/layer_quantizers.h"
#include "vimvq/vq/baselines.h"
#include "vimvq/vq/layout.h"

namespace vimvq::vq {
namespace {

class KMeansQuantizer final : public LayerQuantizer {
 public:
  KMeansQuantizer(const at::Tensor& weight, const at::Tensor& importance, const LayerQuantizerOptions& o)
      : shape_(vq_shape(o.bits, weight.numel(), o.max_codewords)) {
    KMeansParams kp;
    kp.k = shape_.k;
    kp.iterations = o.kmeans_iterations;
    kp.seed = o.kmeans_seed;
    kp.max_points_per_centroid = o.kmeans_max_points_per_centroid;
    vq_ = kmeans_quantize(weight, importance, shape_.d, kp);
  }

  at::Tensor weight() const override { return vq_.weight; }
  at::Tensor hard_weight() const override { return vq_.weight; }
  LayerProgress progress() const override { return {shape_.n_sub, shape_.n_sub, 0}; }

  QuantizedWeight finish(const std::string& name) const override {
    QuantizedWeight q;
    q.name = name;
    q.shape = vq_.weight.sizes().vec();
    q.method = Method::kKmeans;
    q.k = shape_.k;
    q.d = shape_.d;
    q.code_bits = shape_.code_bits;
    q.codebook = stored_codebook(vq_.codebook);
    q.codes = code_bytes(vq_.codes);
    return q;
  }

 private:
  VqShape shape_;
  VqResult vq_;
};

}  // namespace

std::unique_ptr<LayerQuantizer> make_kmeans_quantizer(const at::Tensor& weight, const at::Tensor& importance,
                                                      const LayerQuantizerOptions& options) {
  return std::make_unique<KMeansQuantizer>(weight, importance, options);
}

}  // namespace vimvq::vq
