#include "vimvq/calib/schedule.h"

#include <algorithm>
#include <cmath>

namespace vimvq::calib {

int main_steps(const ScheduleParams& p) {
  return p.iterations - static_cast<int>(std::lround(p.iterations * p.finetune_fraction));
}

namespace {

int stage_length(const ScheduleParams& p) {
  return std::max(1, main_steps(p) / static_cast<int>(p.stage_fractions.size()));
}

bool periodic(vq::EventKind kind) {
  return kind == vq::EventKind::kHullUpdate || kind == vq::EventKind::kConfirmAbove;
}

}  // namespace

StepPlan plan_step(int step, const ScheduleParams& p) {
  using vq::EventKind;
  const int main = main_steps(p);
  const int stages = static_cast<int>(p.stage_fractions.size());
  const int stage_len = stage_length(p);
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

StageSpan stage_span(int step, const ScheduleParams& p) {
  const int main = main_steps(p);
  if (step >= main) return {main, p.iterations};
  const int length = stage_length(p);
  const int begin = step / length * length;
  return {begin, std::min(main, begin + length)};
}

int step_after_plateau(int step, int tail, const ScheduleParams& p) {
  const StageSpan stage = stage_span(step, p);
  const bool finetune = stage.begin >= main_steps(p);
  return std::max(step + 1, finetune ? stage.end : stage.end - tail);
}

std::vector<vq::Event> periodic_events(int from, int to, const ScheduleParams& p) {
  std::vector<vq::Event> events;
  for (int s = from; s < to; ++s) {
    for (const vq::Event& e : plan_step(s, p).after) {
      const bool seen =
          std::any_of(events.begin(), events.end(), [&](const vq::Event& x) { return x.kind == e.kind; });
      if (periodic(e.kind) && !seen) events.push_back(e);
    }
  }
  return events;
}

}  // namespace vimvq::calib
