// Moving the calibration set through the model's pieces without gradients, in fixed-size slices
// so that memory stays bounded by the slice, not the calibration set.
#pragma once

#include "vimvq/calib/block_calibrator.h"

namespace vimvq::calib {

constexpr int64_t kForwardBatch = 64;  // rows per no-grad forward

// A no-grad pass (kForwardBatch rows at a time) and the optimisation steps (batch_size rows) free
// and reuse blocks of different sizes: what the CPU block cache kept for one would only add to the
// peak during the other. Each pass starts and ends with the cache emptied.
class PassBlockCacheScope {
 public:
  PassBlockCacheScope();
  ~PassBlockCacheScope();
  PassBlockCacheScope(const PassBlockCacheScope&) = delete;
  PassBlockCacheScope& operator=(const PassBlockCacheScope&) = delete;
};

Chain embed_chain(model::VimModel& model, const at::Tensor& images);
Chain run_block(model::VimModel& model, int block, const Chain& in);
// Mean squared error of the block's hidden output on the first `rows` rows against `target`.
double block_loss(model::VimModel& model, int block, const Chain& in, const at::Tensor& target, int64_t rows);
// The same loss of a block output already computed by run_block.
double mean_squared_error(const at::Tensor& output, const at::Tensor& target, int64_t rows);

}  // namespace vimvq::calib
