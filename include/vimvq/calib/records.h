// Typed records a calibration emits, one per layer and one per block; report/ renders them
// (console line, JSON, Markdown) and never reads them back out of text.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "vimvq/vq/size_plan.h"

namespace vimvq::calib {

struct LayerRecord {
  std::string name;
  int block = 0;
  std::vector<int64_t> shape;
  int bits = 0;  // its width (all alike but with --target-bpw)
  vq::LayerPlan plan;
  bool calibrated = false;      // false: planned only (a dry run); the errors below are unset
  double weight_error = 0;      // ||W' - W||^2 / ||W||^2, W' as stored (fp16 codebook)
  double truncation_error = 0;  // total over its confirmations
};

struct Confirmation {
  int step = 0;
  double fraction = 0;  // confirmed share of the block's sub-vectors afterwards
  double loss_before = 0, loss_after = 0;
  double truncation_error = 0;  // summed over the block's layers
};

struct BlockRecord {
  int index = 0;
  double loss_init = 0;           // block loss with the initial hard weights (k-means / rtn)
  double loss_final = 0;          // with the final hard (stored) weights
  double confirmed_fraction = 0;  // share of the block's sub-vectors hard-assigned at the end (1)
  double seconds = 0;
  int steps = 0;  // optimisation steps run: fewer than `iterations` when early stopping cut stages
  std::vector<Confirmation> confirmations;
  // Mean task loss (the block loss without the regularizer) over each full epoch of steps, that
  // is each floor(images / batch_size) consecutive batches: the block's loss curve.
  std::vector<double> epoch_losses;
};

}  // namespace vimvq::calib
