// The schedule as tables: no tensors, only (step, parameters) -> plan.
#include <gtest/gtest.h>

#include "vimvq/calib/plateau.h"
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

TEST(Schedule, StageSpansCoverTheRampsAndTheFineTune) {
  auto p = small(ScheduleRules::kVimvq);  // stages [0, 9) [9, 18) [18, 27) [27, 36), fine-tune [36, 40)
  const std::vector<std::pair<int, calib::StageSpan>> rows = {{0, {0, 9}},    {8, {0, 9}},    {9, {9, 18}},
                                                              {35, {27, 36}}, {36, {36, 40}}, {39, {36, 40}}};
  for (const auto& [step, span] : rows) {
    EXPECT_EQ(calib::stage_span(step, p).begin, span.begin) << "step " << step;
    EXPECT_EQ(calib::stage_span(step, p).end, span.end) << "step " << step;
  }
  p.iterations = 42;  // 38 main steps: a 2-step remainder ramp before the hardening
  EXPECT_EQ(calib::stage_span(37, p).begin, 36);
  EXPECT_EQ(calib::stage_span(37, p).end, 38);
  EXPECT_EQ(calib::stage_span(38, p).begin, 38);
  EXPECT_EQ(calib::stage_span(38, p).end, 42);
}

TEST(Schedule, APlateauSkipsToTheStagesLastStepsOrEndsTheFineTune) {
  const auto p = small(ScheduleRules::kVimvq);
  EXPECT_EQ(calib::step_after_plateau(2, 3, p), 6);    // stage [0, 9): its last 3 steps
  EXPECT_EQ(calib::step_after_plateau(6, 3, p), 7);    // already inside them: no skip
  EXPECT_EQ(calib::step_after_plateau(8, 3, p), 9);    // the stage's last step
  EXPECT_EQ(calib::step_after_plateau(29, 3, p), 33);  // stage [27, 36) keeps the hardening step
  EXPECT_EQ(calib::step_after_plateau(37, 3, p), 40);  // the fine-tune ends at once
}

TEST(Schedule, SkippedStepsKeepEachPeriodicEventOnce) {
  const auto vimvq = small(ScheduleRules::kVimvq);
  EXPECT_TRUE(calib::periodic_events(0, 4, vimvq).empty());
  // Steps 4, 9 and 14 check; step 8's stage confirmation is not periodic and is left out.
  const auto events = calib::periodic_events(2, 15, vimvq);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].kind, EventKind::kHullUpdate);
  EXPECT_EQ(events[1].kind, EventKind::kConfirmAbove);
  const auto vq4dit = calib::periodic_events(0, 10, small(ScheduleRules::kVq4dit));
  ASSERT_EQ(vq4dit.size(), 1u);
  EXPECT_EQ(vq4dit[0].kind, EventKind::kConfirmAbove);
}

TEST(Plateau, EpochsWithoutEnoughImprovementInARowMakeAPlateau) {
  calib::PlateauDetector d(/*tolerance=*/0.1, /*patience=*/2);
  EXPECT_FALSE(d.add(1.0));   // the stage's first epoch sets its best
  EXPECT_FALSE(d.add(0.8));   // 20 % better
  EXPECT_FALSE(d.add(0.75));  // 6 % better: one stale epoch
  EXPECT_TRUE(d.add(0.74));   // two in a row
  d.reset();                  // a new stage, its loss higher after the confirmation
  EXPECT_FALSE(d.add(5.0));
  EXPECT_FALSE(d.add(6.0));  // worse: stale
  EXPECT_FALSE(d.add(4.0));  // a real improvement starts the count again
  EXPECT_FALSE(d.add(3.9));
  EXPECT_TRUE(d.add(3.8));  // small gains add up against the best, yet each is under 10 %
}

TEST(Plateau, ZeroToleranceNeverStops) {
  calib::PlateauDetector d(0, 1);
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(d.add(1.0));
}
