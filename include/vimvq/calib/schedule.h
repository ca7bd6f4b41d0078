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

// The steps [begin, end) of the stage holding `step`: one ramp of the main steps (the last may be
// a shorter remainder before the hardening) or the codebook-only fine-tune.
struct StageSpan {
  int begin = 0, end = 0;
};
StageSpan stage_span(int step, const ScheduleParams& p);

// Early stopping (docs/METHOD.md section 5): a stage whose loss plateaued after `step` goes on at
// its last `tail` steps, so it still ends at the top of its regularizer ramp with its
// confirmation; the fine-tune ends at once. Never before step + 1.
int step_after_plateau(int step, int tail, const ScheduleParams& p);
// The periodic events (hull update, confirm above) of the steps in [from, to), each kind once, in
// plan order: what skipping those steps still applies.
std::vector<vq::Event> periodic_events(int from, int to, const ScheduleParams& p);

}  // namespace vimvq::calib
