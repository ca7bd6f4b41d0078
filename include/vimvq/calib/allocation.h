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

// One width a layer could be written at: what it takes and the output error it would cause.
struct WidthOption {
  int bits = 0;
  vq::LayerPlan plan;
  double output_error = 0;  // mean over calibration tokens of ||(W' - W) x||^2
  int64_t stored_bits() const { return plan.index_bits() + plan.codebook_bits(); }
};

struct LayerOptions {
  std::string name;
  std::vector<WidthOption> widths;  // by increasing stored bits
};

// The widths `method` supports, narrowest first: 1..4 for the VQ methods, 1..8 for rtn.
std::vector<int> supported_widths(vq::Method method);

// The output error of every supported width of every planned layer: each weight quantized as the
// method starts (k-means with the inputs' channel importances, or rtn) and multiplied with its
// inputs' second moments on the first `images` calibration images, through the full-precision
// model.
std::vector<LayerOptions> measure_width_options(model::VimModel& model, const at::Tensor& images,
                                                const CalibrationParams& p,
                                                const std::vector<LayerRecord>& planned,
                                                int64_t sample_images);

struct Allocation {
  std::map<std::string, int> bits;  // per layer
  int64_t weights = 0, stored_bits = 0;
  double bpw() const { return weights ? static_cast<double>(stored_bits) / weights : 0; }
};

// Greedy by output-error decrease per stored bit from every layer at its narrowest width, never
// past target_bpw x weights; throws vimvq::Error when the target is out of the model's reach or
// the total lands more than 1 % below it.
Allocation allocate_widths(const std::vector<LayerOptions>& layers, double target_bpw);

}  // namespace vimvq::calib
