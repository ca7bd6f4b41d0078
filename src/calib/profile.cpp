#include "vimvq/calib/profile.h"

#include <c10/core/impl/DeviceGuardImplInterface.h>

namespace vimvq::calib {

const char* phase_name(Phase phase) {
  switch (phase) {
    case Phase::kTargets:
      return "targets";
    case Phase::kImportances:
      return "importances";
    case Phase::kCodebooks:
      return "codebooks";
    case Phase::kInitialLoss:
      return "initial_loss";
    case Phase::kSoftWeights:
      return "soft_weights";
    case Phase::kForward:
      return "forward";
    case Phase::kBackward:
      return "backward";
    case Phase::kOptimiser:
      return "optimiser";
    case Phase::kHullUpdate:
      return "hull_update";
    case Phase::kConfirm:
      return "confirm";
    case Phase::kFinish:
      return "finish";
    case Phase::kChainAdvance:
      return "chain_advance";
    case Phase::kCount:
      break;
  }
  return "?";
}

double BlockProfile::step_seconds() const {
  if (steps < 2) return 0;
  double per_step = 0;
  for (Phase p : {Phase::kSoftWeights, Phase::kForward, Phase::kBackward, Phase::kOptimiser})
    per_step += seconds[static_cast<int>(p)];
  return (per_step - first_step_seconds) / static_cast<double>(steps - 1);
}

void Profiler::synchronize() const {
  if (device_.is_cpu()) return;  // CPU work is done when the call returns
  c10::impl::getDeviceGuardImpl(device_.type())->synchronizeDevice(device_.index());
}

BlockProfile& Profiler::block(int index) {
  for (auto& b : profile_.blocks)
    if (b.block == index) return b;
  profile_.blocks.emplace_back();
  profile_.blocks.back().block = index;
  return profile_.blocks.back();
}

ScopedPhase::ScopedPhase(Profiler* profiler, int block, Phase phase)
    : profiler_(profiler), block_(block), phase_(phase) {
  if (profiler_) profiler_->synchronize();
  start_ = std::chrono::steady_clock::now();
}

double ScopedPhase::elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

ScopedPhase::~ScopedPhase() {
  if (!profiler_) return;
  profiler_->synchronize();
  const double s = elapsed();
  if (block_ < 0)
    profiler_->profile().embed_seconds += s;
  else
    profiler_->block(block_).seconds[static_cast<int>(phase_)] += s;
}

}  // namespace vimvq::calib
