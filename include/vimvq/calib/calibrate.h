// Block-by-block calibration (METHOD.md sections 3 to 6): the quantized chain feeds each block,
// the full-precision model's block output is the target, and every selected layer of the block
// is quantized by the chosen method before the chain moves on. Knows nothing about files.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "vimvq/calib/params.h"
#include "vimvq/format/packed_checkpoint.h"
#include "vimvq/model/vim_model.h"

namespace vimvq::calib {

struct Confirmation {
  int step = 0;
  double fraction = 0;  // confirmed share of the block's sub-vectors afterwards
  double loss_before = 0, loss_after = 0;
  double truncation_error = 0;  // summed over the block's layers
};

struct LayerReport {
  std::string name;
  std::vector<int64_t> shape;
  int64_t k = 0, groups = 1;
  int d = 0, code_bits = 0;
  int64_t index_bits = 0, codebook_bits = 0;
  double weight_error = 0;      // ||W' - W||^2 / ||W||^2
  double truncation_error = 0;  // total over its confirmations
};

struct BlockReport {
  int index = 0;
  double loss_init = 0;           // block loss with the initial hard weights (k-means / rtn)
  double loss_final = 0;          // with the final hard weights
  double confirmed_fraction = 0;  // share of the block's sub-vectors hard-assigned at the end (1)
  double seconds = 0;
  std::vector<Confirmation> confirmations;
};

struct CalibrationResult {
  std::vector<format::QuantizedLayer> layers;
  std::vector<LayerReport> layer_reports;
  std::vector<BlockReport> blocks;
  double seconds = 0;
};

struct Callbacks {
  std::function<void(const std::string&)> log;  // one line per layer / block
  std::function<void(int64_t steps)> advance;   // optimisation steps done (progress bar)
};

// Total optimisation steps quantize_model will take (for the progress bar).
int64_t planned_steps(const CalibrationParams& p, int blocks_with_layers);

// Names (full) of the quantizable layers selected by p.include / p.exclude (glob patterns).
std::vector<model::LayerInfo> select_layers(const model::VimModel& model, const CalibrationParams& p);

// Quantizes `model` in place (its selected weights become the hard, fp16-codebook weights).
// images: (N, C, H, W) preprocessed calibration images on the model's device.
CalibrationResult quantize_model(model::VimModel& model, const at::Tensor& images, const CalibrationParams& p,
                                 const Callbacks& callbacks);

}  // namespace vimvq::calib
