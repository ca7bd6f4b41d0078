// Moving the calibration set through the model's pieces without gradients, in fixed-size slices
// so that memory stays bounded by the slice, not the calibration set.
//
// The slices have as many rows as a calibration step (CalibrationParams::batch_size): the passes
// and the steps then allocate activations of the same sizes, so the CPU block cache
// (util/cpu_block_cache.h) hands the blocks of one to the other instead of each pass faulting in
// fresh memory and leaving blocks of a size the steps never ask for.
#pragma once

#include "vimvq/calib/block_calibrator.h"

namespace vimvq::calib {

// `count` of the `n` calibration rows spread evenly, rows floor(i * n / count): the set is in path
// order, so a prefix would hold only a few classes.
at::Tensor spread_rows(int64_t n, int64_t count, at::Device device);
Chain embed_chain(model::VimModel& model, const at::Tensor& images, int64_t slice_rows);
Chain run_block(model::VimModel& model, int block, const Chain& in, int64_t slice_rows);
// Mean squared error of the block's hidden output on the first `rows` rows against `target`.
double block_loss(model::VimModel& model, int block, const Chain& in, const at::Tensor& target, int64_t rows,
                  int64_t slice_rows);
// The same loss of a block output already computed by run_block with the same slice_rows.
double mean_squared_error(const at::Tensor& output, const at::Tensor& target, int64_t rows,
                          int64_t slice_rows);

}  // namespace vimvq::calib
