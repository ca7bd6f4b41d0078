// One interface for quantizing one layer, whatever the method: initialise from the weight and its
// input-channel importances; expose the weight the block runs with and the tensors an optimiser
// trains; react to schedule events; finish into the stored form. Modelled on faiss's Quantizer:
// an explicit options struct, one factory, no method test outside it.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "vimvq/vq/convex_quantizer.h"
#include "vimvq/vq/events.h"
#include "vimvq/vq/method.h"
#include "vimvq/vq/quantized_weight.h"

namespace vimvq::vq {

struct LayerQuantizerOptions {
  Method method = Method::kVimvq;
  int bits = 2;
  int64_t max_codewords = 0;  // VQ methods: 0 keeps the width's k, else at most this (vq_shape)
  int kmeans_iterations = 100;
  int64_t kmeans_max_points_per_centroid = 256;  // k-means trains on a sample above k * this (0: all)
  uint64_t kmeans_seed = 1234;
  int hull_size = 4;  // vimvq's n; vq4dit always uses 2 (docs/METHOD.md section 6)
  ConfirmOrder confirm_order = ConfirmOrder::kLargestRatio;
  double vq4dit_harden_fraction = 0.99;
};

struct LayerProgress {
  int64_t confirmed = 0, total = 0;  // sub-vectors hard-assigned / all (non-VQ methods: all / all)
  double truncation_error = 0;       // summed over the layer's confirmations so far
};

class LayerQuantizer {
 public:
  virtual ~LayerQuantizer() = default;

  // The weight the block should run with now: the soft weight (differentiable in the trainable
  // tensors) while a calibrated method trains, the hard weight otherwise.
  virtual at::Tensor weight() const = 0;
  // The current codes with the full-precision codebook (before any fp16 rounding).
  virtual at::Tensor hard_weight() const = 0;
  // Trainable tensors, for the optimisers (empty for methods without calibration steps).
  virtual std::vector<at::Tensor> ratio_tensors() { return {}; }
  virtual std::vector<at::Tensor> codebook_tensors() { return {}; }
  // The ratio regularizer of section 4, or an undefined tensor when the method has none.
  virtual at::Tensor ratio_regularizer() const { return {}; }
  // Reacts to a schedule event; returns the truncation error it caused.
  virtual double on_event(const Event& /*event*/) { return 0; }
  virtual LayerProgress progress() const = 0;
  // The stored form: fp16 codebooks and every code hard.
  virtual QuantizedWeight finish(const std::string& name) const = 0;
};

// weight: the layer's fp32 weight (out, in); channel_importance: h_c per input channel (in), or
// undefined for unweighted k-means. Throws vimvq::Error for an unsupported width.
std::unique_ptr<LayerQuantizer> make_layer_quantizer(const at::Tensor& weight,
                                                     const at::Tensor& channel_importance,
                                                     const LayerQuantizerOptions& options);

}  // namespace vimvq::vq
