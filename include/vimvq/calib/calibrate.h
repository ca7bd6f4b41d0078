// Block-by-block calibration (docs/METHOD.md sections 3 to 6): the quantized chain feeds each
// block, the full-precision model's block output is the target, and every selected layer of the
// block is quantized by the chosen method before the chain moves on. Knows nothing about files.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "vimvq/calib/end_to_end.h"
#include "vimvq/calib/params.h"
#include "vimvq/calib/profile.h"
#include "vimvq/calib/records.h"
#include "vimvq/model/vim_model.h"
#include "vimvq/vq/quantized_weight.h"

namespace vimvq::calib {

struct CalibrationResult {
  std::vector<vq::QuantizedWeight> layers;
  std::vector<LayerRecord> layer_records;
  std::vector<BlockRecord> blocks;
  std::optional<EndToEndRecord> end_to_end;  // with p.e2e_steps > 0
  double seconds = 0;
};

// Where a calibration stopped after a whole block: with it, quantize_model continues at
// next_block and produces exactly what an uninterrupted run would.
struct ResumePoint {
  int next_block = 0;
  CalibrationResult done;      // the finished blocks' layers and records
  at::Tensor generator_state;  // the batch-order generator's state (a CPU byte tensor)
};

struct Callbacks {
  std::function<void(const LayerRecord&)> on_layer;  // as each layer is finished
  std::function<void(const BlockRecord&)> on_block;  // as each block is finished
  std::function<void(int64_t steps)> advance;        // optimisation steps done (progress bar)
  std::function<void(int steps)> on_end_to_end;      // as the end-to-end stage starts
  // After each calibrated block but the last: where a resumed run would start, what is done so far
  // (not copied: the state grows with every block), and the batch generator's state.
  std::function<void(int next_block, const CalibrationResult& done, const at::Tensor& generator_state)>
      on_checkpoint;
};

// The quantizable layers selected by p.include / p.exclude (globs or substrings of full names).
std::vector<model::LayerInfo> select_layers(const model::VimModel& model, const CalibrationParams& p);

// Throws vimvq::Error naming the model file when `p` asks what its device cannot do (bf16 steps
// off the CPU).
void check_model_supports(const model::VimModel& model, const CalibrationParams& p);

// What each selected layer will take, without doing any work: the rows a dry run prints.
std::vector<LayerRecord> plan_layers(const model::VimModel& model, const CalibrationParams& p);

// Total optimisation steps quantize_model will take (for the progress bar), the end-to-end
// stage's included.
int64_t planned_steps(const CalibrationParams& p, int blocks_with_layers);

// Quantizes `model` in place (its selected weights become the stored, fp16-codebook weights).
// images: (N, C, H, W) preprocessed calibration images on the model's device. The chains stop
// at the last block with a selected layer. profiler: null, or where the phase times go.
// resume: null, or where an earlier run of the same inputs and parameters stopped.
// stage_extra: more images (N', C, H, W) that the end-to-end stage trains on besides `images`
// (e2e_extra_images); undefined for none.
CalibrationResult quantize_model(model::VimModel& model, const at::Tensor& images, const CalibrationParams& p,
                                 const Callbacks& callbacks, Profiler* profiler = nullptr,
                                 const ResumePoint* resume = nullptr, const at::Tensor& stage_extra = {});

}  // namespace vimvq::calib
