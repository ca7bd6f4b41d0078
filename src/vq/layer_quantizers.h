// The implementations behind vq::make_layer_quantizer, one per file.
#pragma once

#include "vimvq/vq/layer_quantizer.h"

namespace vimvq::vq {

std::unique_ptr<LayerQuantizer> make_rtn_quantizer(const at::Tensor& weight, int bits);
// importance: per sub-vector position (n_sub, d), or undefined.
std::unique_ptr<LayerQuantizer> make_kmeans_quantizer(const at::Tensor& weight, const at::Tensor& importance,
                                                      const LayerQuantizerOptions& options);
std::unique_ptr<LayerQuantizer> make_convex_quantizer(const at::Tensor& weight, const at::Tensor& importance,
                                                      const LayerQuantizerOptions& options);

// The codebook as stored: fp16 values held in fp32, on the CPU.
at::Tensor stored_codebook(const at::Tensor& codebook);

}  // namespace vimvq::vq
