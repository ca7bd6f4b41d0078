#include "vimvq/calib/schedule.h"

#include <algorithm>
#include <cmath>

namespace vimvq::calib {

int main_steps(const ScheduleParams& p) {
  return p.iterations - static_cast<int>(std::lround(p.iterations * p.finetune_fraction));
}

StepPlan plan_step(int step, const ScheduleParams& p) {
  using vq::EventKind;
  const int main = main_steps(p);
  const int stages = static_cast<int>(p.stage_fractions.size());
  const int stage_len = std::max(1, main / stages);
  StepPlan plan;
  plan.train_ratios = step < main;
  if (!plan.train_ratios) return plan;
  plan.ramp_step = step % stage_len + 1;
  plan.ramp_length = stage_len;
  const bool check = (step + 1) % p.hull_update_every == 0;
  const bool vimvq = p.rules == ScheduleRules::kVimvq;
  if (check && vimvq && p.hull_update) plan.after.push_back({EventKind::kHullUpdate, 0});
  if (check && (!vimvq || p.incremental))
    plan.after.push_back({EventKind::kConfirmAbove, p.confirm_threshold});
  if (vimvq && p.incremental && (step + 1) % stage_len == 0) {
    const int s = std::min(stages - 1, (step + 1) / stage_len - 1);
    plan.after.push_back({EventKind::kConfirmToFraction, p.stage_fractions[s]});
  }
  if (step + 1 == main) plan.after.push_back({EventKind::kHardenAll, 0});
  return plan;
}

}  // namespace vimvq::calib
