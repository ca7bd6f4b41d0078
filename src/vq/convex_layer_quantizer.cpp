// The convex-combination quantizer as a LayerQuantizer (docs/METHOD.md sections 4 to 6): vimvq's
// rules, and vq4dit's (two fixed candidates, codebook frozen until the layer hardens once
// `vq4dit_harden_fraction` of it is confirmed).
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "src/vq/layer_quantizers.h"
#include "vimvq/vq/kmeans.h"
#include "vimvq/vq/layout.h"
#include "vimvq/vq/subvectors.h"

namespace vimvq::vq {
namespace {

class ConvexLayerQuantizer : public LayerQuantizer {
 public:
  ConvexLayerQuantizer(const at::Tensor& weight, const at::Tensor& importance, const LayerQuantizerOptions& o,
                       int hull_size)
      : options_(o),
        shape_(vq_shape(o.bits, weight.numel(), o.max_codewords)),
        weight_shape_(weight.sizes().vec()) {
    KMeansParams kp;
    kp.k = shape_.k;
    kp.iterations = o.kmeans_iterations;
    kp.seed = o.kmeans_seed;
    kp.max_points_per_centroid = o.kmeans_max_points_per_centroid;
    const at::Tensor sub = to_subvectors(weight, shape_.d);
    const KMeansResult km = weighted_kmeans(sub, importance, kp);
    ConvexParams cp;
    cp.hull_size = hull_size;
    convex_ = std::make_unique<ConvexQuantizer>(sub, importance, km.centroids, cp);
  }

  at::Tensor weight() const override { return from_subvectors(convex_->soft_subvectors(), weight_shape_); }
  at::Tensor hard_weight() const override {
    return from_subvectors(convex_->hard_subvectors().detach(), weight_shape_);
  }
  std::vector<at::Tensor> ratio_tensors() override { return {convex_->logits()}; }
  std::vector<at::Tensor> codebook_tensors() override { return {convex_->codebook()}; }
  at::Tensor ratio_regularizer() const override { return convex_->ratio_regularizer(); }

  double on_event(const Event& e) override {
    double t = 0;
    switch (e.kind) {
      case EventKind::kHullUpdate:
        convex_->update_hull();
        break;
      case EventKind::kConfirmAbove:
        t = convex_->confirm_above(e.value).truncation_error;
        break;
      case EventKind::kConfirmToFraction:
        t = convex_->confirm_to_fraction(e.value, options_.confirm_order).truncation_error;
        break;
      case EventKind::kHardenAll:
        t = harden();
        break;
    }
    truncation_ += t;
    return t;
  }

  LayerProgress progress() const override {
    return {convex_->num_confirmed(), convex_->num_subvectors(), truncation_};
  }

  QuantizedWeight finish(const std::string& name) const override {
    QuantizedWeight q;
    q.name = name;
    q.shape = weight_shape_;
    q.method = options_.method;
    q.k = shape_.k;
    q.d = shape_.d;
    q.code_bits = shape_.code_bits;
    q.codebook = stored_codebook(convex_->codebook());
    q.codes = code_bytes(convex_->codes());
    return q;
  }

 protected:
  // Every free sub-vector takes its largest-ratio codeword; the codebook trains from now on.
  double harden() {
    convex_->codebook().requires_grad_(true);
    return convex_->confirm_all().truncation_error;
  }
  double confirmed_share() const {
    return static_cast<double>(convex_->num_confirmed()) / convex_->num_subvectors();
  }

  LayerQuantizerOptions options_;
  VqShape shape_;
  std::vector<int64_t> weight_shape_;
  std::unique_ptr<ConvexQuantizer> convex_;
  double truncation_ = 0;
};

class Vq4ditLayerQuantizer final : public ConvexLayerQuantizer {
 public:
  Vq4ditLayerQuantizer(const at::Tensor& weight, const at::Tensor& importance, const LayerQuantizerOptions& o)
      : ConvexLayerQuantizer(weight, importance, o, /*hull_size=*/2) {
    convex_->codebook().requires_grad_(false);  // frozen until the layer hardens
  }

  double on_event(const Event& e) override {
    if (e.kind == EventKind::kHullUpdate) return 0;  // vq4dit's candidates never move
    double t = ConvexLayerQuantizer::on_event(e);
    if (e.kind == EventKind::kConfirmAbove && !hardened_ &&
        confirmed_share() >= options_.vq4dit_harden_fraction) {
      const double rest = harden();
      truncation_ += rest;
      t += rest;
      hardened_ = true;
    }
    return t;
  }

 private:
  bool hardened_ = false;
};

}  // namespace

std::unique_ptr<LayerQuantizer> make_convex_quantizer(const at::Tensor& weight, const at::Tensor& importance,
                                                      const LayerQuantizerOptions& options) {
  if (options.method == Method::kVq4dit)
    return std::make_unique<Vq4ditLayerQuantizer>(weight, importance, options);
  return std::make_unique<ConvexLayerQuantizer>(weight, importance, options, options.hull_size);
}

}  // namespace vimvq::vq
