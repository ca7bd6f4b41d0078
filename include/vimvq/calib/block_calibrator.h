// Calibrates one block (docs/METHOD.md sections 2 to 6): owns the block's layer quantizers, their
// importances and the optimisers, runs the schedule's step loop against the full-precision target,
// and leaves the stored (fp16-codebook) weights set in the block.
#pragma once

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <chrono>
#include <map>
#include <memory>
#include <vector>

#include "vimvq/calib/calibrate.h"
#include "vimvq/calib/profile.h"
#include "vimvq/calib/schedule.h"
#include "vimvq/model/parameter_slot.h"
#include "vimvq/vq/layer_quantizer.h"

namespace torch::optim {
class Adam;
}

namespace vimvq::calib {

// Activations of every calibration image at a block boundary.
struct Chain {
  at::Tensor hidden, residual;
};

// The calibration parameters as the schedule and as block `block`'s layer number `layer` see them.
ScheduleParams schedule_params(const CalibrationParams& p);
// `name`: the layer's full name, for its width (bits_of).
vq::LayerQuantizerOptions layer_quantizer_options(const CalibrationParams& p, int block, size_t layer,
                                                  const std::string& name);

class BlockCalibrator {
 public:
  // quantized_in: the quantized chain entering the block; target: the full-precision block's
  // hidden output on the full-precision chain. Computes importances and initialises every
  // layer's quantizer (k-means, rtn levels...), then measures the initial block loss.
  // profiler: null, or where the phases' times go.
  BlockCalibrator(model::VimModel& model, int block, std::vector<model::LayerInfo> layers,
                  const CalibrationParams& params, Chain quantized_in, at::Tensor target,
                  Profiler* profiler = nullptr);
  ~BlockCalibrator();

  // The optimisation steps (none for methods without calibration). `advance` counts steps.
  void train(at::Generator& generator, const std::function<void(int64_t)>& advance);
  // Sets the stored weights in the block and returns them; fills the records.
  std::vector<vq::QuantizedWeight> finish(std::vector<LayerRecord>* layer_records);
  // After finish: the block's output on the quantized chain with the stored weights (the
  // quantized chain entering the next block), moved out.
  Chain take_output() { return std::move(out_); }

  const BlockRecord& record() const { return record_; }
  // The layers' quantizers, in selection order (tests look inside).
  const std::vector<std::unique_ptr<vq::LayerQuantizer>>& quantizers() const { return quantizers_; }

 private:
  std::map<std::string, at::Tensor> channel_importances(const Chain& in);
  // One quantizer per layer from its original weight and input-channel importances.
  void make_quantizers(const std::map<std::string, at::Tensor>& importances);
  void set_weights(bool hard);
  bool reported(const vq::Event& event) const;
  double confirmed_share() const;
  // One optimisation step; returns its task loss (the block loss without the regularizer).
  at::Tensor step(const StepPlan& plan, const at::Tensor& batch);
  void apply(int step, const vq::Event& event);
  // Profile: the warm-up ends with the first step.
  void note_warmup(std::chrono::steady_clock::time_point first_step_start);
  int skip_plateau(int step, int tail);
  void time_reference_steps(int steps);

  model::VimModel& model_;
  int block_;
  std::vector<model::LayerInfo> layers_;
  CalibrationParams params_;
  ScheduleParams schedule_;
  Chain in_, out_;
  at::Tensor target_;
  std::vector<at::Tensor> weights_;  // originals, fp32
  std::vector<model::ParameterSlot> slots_;
  std::vector<std::unique_ptr<vq::LayerQuantizer>> quantizers_;
  std::unique_ptr<torch::optim::Adam> ratio_optimiser_, codebook_optimiser_;
  BlockRecord record_;
  Profiler* profiler_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace vimvq::calib
