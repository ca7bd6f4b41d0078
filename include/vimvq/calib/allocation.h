// `--target-bpw`: a bit width per layer so that the quantized weights average a given number of
// bits, codebooks and per-row tables counted as the size ledger counts them, chosen by measured
// sensitivity (docs/METHOD.md, "Bit allocation").
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <vector>

#include "vimvq/calib/params.h"
#include "vimvq/calib/records.h"
#include "vimvq/model/vim_model.h"

namespace vimvq::calib {

// One width a layer could be written at: what it takes and the loss increase it would cause.
struct WidthOption {
  int bits = 0;
  int64_t max_codewords = 0;  // the codebook cap (vq::vq_shape), 0 for none
  vq::LayerPlan plan;
  double loss_increase = 0;  // 1/2 sum F (W' - W)^2, F the weight's diagonal Fisher (calib/fisher.h)
  int64_t stored_bits() const { return plan.index_bits() + plan.codebook_bits(); }
};

struct LayerOptions {
  std::string name;
  std::vector<WidthOption> widths;  // by increasing stored bits
};

// The widths `method` supports, narrowest first: 1..4 for the VQ methods, 1..8 for rtn.
std::vector<int> supported_widths(vq::Method method);
// The codebook caps the allocation tries beside each VQ width's own k (0: none); rtn has only 0.
std::vector<int64_t> codebook_caps(vq::Method method);

// The loss increase of every supported width and cap of every planned layer: each weight quantized
// as the method starts (k-means with the inputs' channel importances, or rtn), its change priced by
// the weight's diagonal Fisher on the first `sample_images` calibration images through the
// full-precision model (the second-order estimate of the KL it adds to the logits).
std::vector<LayerOptions> measure_width_options(model::VimModel& model, const at::Tensor& images,
                                                const CalibrationParams& p,
                                                const std::vector<LayerRecord>& planned,
                                                int64_t sample_images);

struct Allocation {
  std::map<std::string, int> bits;               // per layer
  std::map<std::string, int64_t> max_codewords;  // per capped layer (CalibrationParams::layer_codewords)
  int64_t weights = 0, stored_bits = 0;
  double bpw() const { return weights ? static_cast<double>(stored_bits) / weights : 0; }
};

// Greedy by loss-increase decrease per stored bit from every layer at its narrowest width, never
// past target_bpw x weights; throws vimvq::Error when the target is out of the model's reach or
// the total lands more than 1 % below it.
Allocation allocate_widths(const std::vector<LayerOptions>& layers, double target_bpw);

}  // namespace vimvq::calib
