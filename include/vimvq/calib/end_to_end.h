// The end-to-end stage after the block-wise pass (docs/METHOD.md, "End-to-end stage"): every
// quantized layer's codebooks fine-tuned together, codes fixed, on KL(full-precision logits ||
// quantized logits) over the calibration images.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <vector>

#include "vimvq/calib/params.h"
#include "vimvq/model/vim_model.h"
#include "vimvq/vq/quantized_weight.h"

namespace vimvq::calib {

struct EndToEndRecord {
  int steps = 0;
  int64_t images = 0;                  // the images the KL figures below are measured on
  double kl_before = 0, kl_after = 0;  // mean KL(full precision || quantized), hard weights
  double seconds = 0;
  int64_t rest_values = 0;  // unquantized values tuned besides the codebooks (e2e_rest)
};

// The full-precision model's logits on `images` (N, C, H, W), computed in slices of `slice_rows`.
at::Tensor teacher_logits(model::VimModel& model, const at::Tensor& images, int64_t slice_rows);

// The mean KL(softmax(teacher) || softmax(model(images))) of one batch, back-propagated into
// whatever the blocks' weights were computed from, block by block: a pass without gradients
// keeps each block's input, then the head and each block from the last down to `first_block`
// run again with gradients and are back-propagated alone. The graph alive at any time is one
// block's, not the whole model's (on Vim-T at 224 px and batch 32, a whole-model graph took
// quantize's peak from 0.97 to 3.83 GB), for one more forward of the blocks.
double kl_backward_by_blocks(model::VimModel& model, const at::Tensor& images, const at::Tensor& teacher,
                             int first_block);

// p.e2e_steps Adam steps (rate p.e2e_lr) on batches of p.batch_size drawn by `generator`. The
// model must hold the layers' hard weights; it holds the tuned ones after, and `layers` their
// codebooks (fp16 values, as stored). `first_block` is the first block holding one of `layers`:
// the blocks before it have nothing to tune, so the backward stops there. With p.e2e_rest the
// 1-D parameters of the blocks from `first_block` on are tuned too, in place in the model (they
// are stored as the rest of the model is: --rest-dtype).
EndToEndRecord finetune_end_to_end(model::VimModel& model, const at::Tensor& images,
                                   const at::Tensor& teacher, std::vector<vq::QuantizedWeight>& layers,
                                   int first_block, const CalibrationParams& p, at::Generator& generator,
                                   const std::function<void(int64_t)>& advance);

}  // namespace vimvq::calib
