// Moving the calibration set through the model's pieces without gradients, in fixed-size slices
// so that memory stays bounded by the slice, not the calibration set.
#pragma once

#include "vimvq/calib/block_calibrator.h"

namespace vimvq::calib {

constexpr int64_t kForwardBatch = 64;  // rows per no-grad forward

Chain embed_chain(model::VimModel& model, const at::Tensor& images);
Chain run_block(model::VimModel& model, int block, const Chain& in);
// Mean squared error of the block's hidden output on the first `rows` rows against `target`.
double block_loss(model::VimModel& model, int block, const Chain& in, const at::Tensor& target, int64_t rows);
// The same loss of a block output already computed by run_block.
double mean_squared_error(const at::Tensor& output, const at::Tensor& target, int64_t rows);

}  // namespace vimvq::calib
