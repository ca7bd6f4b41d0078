// The calibration schedule of one block as a pure function of the step and the parameters
// (docs/METHOD.md sections 4 to 6): which tensors train, how far the regularizer has ramped, and
// which events the layer quantizers get after the step. No tensors: unit-tested as tables.
#pragma once

#include <vector>

#include "vimvq/vq/events.h"

namespace vimvq::calib {

enum class ScheduleRules {
  kVimvq,   // hull updates, confirm above a threshold, staged confirmation, harden at the end
  kVq4dit,  // confirm above a threshold (layers harden themselves), harden at the end
};

struct ScheduleParams {
  ScheduleRules rules = ScheduleRules::kVimvq;
  int iterations = 400;
  double finetune_fraction = 0.1;  // codebook-only steps at the end
  std::vector<double> stage_fractions = {0.5, 0.75, 0.9, 1.0};
  int hull_update_every = 25;  // also the period of the confirm-above check
  bool hull_update = true;
  bool incremental = true;  // false: no confirmation before the end (vimvq ablation)
  double confirm_threshold = 0.99;
};

struct StepPlan {
  bool train_ratios = true;  // false in the codebook-only fine-tune
  // The regularizer weight is lambda * ramp_step / ramp_length; both 0 during the fine-tune.
  int ramp_step = 0, ramp_length = 0;
  std::vector<vq::Event> after;  // in order
};

int main_steps(const ScheduleParams& p);  // steps before the codebook-only fine-tune
StepPlan plan_step(int step, const ScheduleParams& p);

}  // namespace vimvq::calib
