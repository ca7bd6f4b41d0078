// The schedule as tables: no tensors, only (step, parameters) -> plan.
#include <gtest/gtest.h>

#include "vimvq/calib/schedule.h"

using namespace vimvq;
using calib::ScheduleParams;
using calib::ScheduleRules;
using vq::Event;
using vq::EventKind;

namespace {

// 40 steps: 36 main (4 stages of 9) + 4 fine-tune; checks every 5 steps.
ScheduleParams small(ScheduleRules rules) {
  ScheduleParams p;
  p.rules = rules;
  p.iterations = 40;
  p.finetune_fraction = 0.1;
  p.hull_update_every = 5;
  return p;
}

const Event kHull{EventKind::kHullUpdate, 0};
const Event kAbove{EventKind::kConfirmAbove, 0.99};
const Event kHarden{EventKind::kHardenAll, 0};
Event fraction(double f) { return {EventKind::kConfirmToFraction, f}; }

struct Row {
  int step;
  std::vector<Event> after;
};

void expect_rows(const ScheduleParams& p, const std::vector<Row>& rows) {
  for (const auto& row : rows) {
    const auto plan = calib::plan_step(row.step, p);
    ASSERT_EQ(plan.after.size(), row.after.size()) << "step " << row.step;
    for (size_t i = 0; i < row.after.size(); ++i) {
      EXPECT_EQ(plan.after[i].kind, row.after[i].kind) << "step " << row.step << " event " << i;
      EXPECT_EQ(plan.after[i].value, row.after[i].value) << "step " << row.step << " event " << i;
    }
  }
}

}  // namespace

TEST(Schedule, VimvqHullUpdatesConfirmationsStagesAndHardening) {
  expect_rows(small(ScheduleRules::kVimvq), {{0, {}},
                                             {3, {}},
                                             {4, {kHull, kAbove}},
                                             {8, {fraction(0.5)}},
                                             {9, {kHull, kAbove}},
                                             {17, {fraction(0.75)}},
                                             {26, {fraction(0.9)}},
                                             {34, {kHull, kAbove}},
                                             {35, {fraction(1.0), kHarden}},
                                             {36, {}},
                                             {39, {}}});
}

TEST(Schedule, NoIncrementalHardensOnlyAtTheEnd) {
  auto p = small(ScheduleRules::kVimvq);
  p.incremental = false;
  expect_rows(p, {{4, {kHull}}, {8, {}}, {17, {}}, {34, {kHull}}, {35, {kHarden}}});
}

TEST(Schedule, NoHullUpdateKeepsTheConfirmations) {
  auto p = small(ScheduleRules::kVimvq);
  p.hull_update = false;
  expect_rows(p, {{4, {kAbove}}, {8, {fraction(0.5)}}, {35, {fraction(1.0), kHarden}}});
}

TEST(Schedule, Vq4ditConfirmsAboveTheThresholdAndHardensAtTheEnd) {
  auto p = small(ScheduleRules::kVq4dit);
  p.confirm_threshold = 0.95;
  expect_rows(p, {{4, {{EventKind::kConfirmAbove, 0.95}}}, {8, {}}, {17, {}}, {35, {kHarden}}});
}

TEST(Schedule, FineTuneTrainsOnlyTheCodebookWithoutRegularizer) {
  const auto p = small(ScheduleRules::kVimvq);
  EXPECT_EQ(calib::main_steps(p), 36);
  struct {
    int step;
    bool train_ratios;
    int ramp_step, ramp_length;
  } rows[] = {{0, true, 1, 9},  {8, true, 9, 9},   {9, true, 1, 9},
              {35, true, 9, 9}, {36, false, 0, 0}, {39, false, 0, 0}};
  for (const auto& r : rows) {
    const auto plan = calib::plan_step(r.step, p);
    EXPECT_EQ(plan.train_ratios, r.train_ratios) << r.step;
    EXPECT_EQ(plan.ramp_step, r.ramp_step) << r.step;
    EXPECT_EQ(plan.ramp_length, r.ramp_length) << r.step;
  }
}

TEST(Schedule, FewerStepsThanStagesStillEndsHard) {
  ScheduleParams p;
  p.iterations = 3;
  p.finetune_fraction = 0;
  p.hull_update_every = 100;
  expect_rows(p, {{0, {fraction(0.5)}}, {1, {fraction(0.75)}}, {2, {fraction(0.9), kHarden}}});
}

TEST(Schedule, EventCountsOverAWholeDefaultRun) {
  ScheduleParams p;  // 400 steps, 360 main, T_h 25, 4 stages of 90
  int hull = 0, above = 0, stages = 0, harden = 0;
  for (int s = 0; s < p.iterations; ++s) {
    for (const auto& e : calib::plan_step(s, p).after) {
      hull += e.kind == EventKind::kHullUpdate;
      above += e.kind == EventKind::kConfirmAbove;
      stages += e.kind == EventKind::kConfirmToFraction;
      harden += e.kind == EventKind::kHardenAll;
    }
  }
  EXPECT_EQ(hull, 360 / 25);
  EXPECT_EQ(above, 360 / 25);
  EXPECT_EQ(stages, 4);
  EXPECT_EQ(harden, 1);
}
