// Where a calibration's time goes (`vimvq quantize --profile`): seconds per phase for the whole
// run and per block, the first step's warm-up, and a plain forward+backward of the same block with
// fixed full-precision weights timed beside the calibration steps (the physical floor of a step).
#pragma once

#include <c10/core/Device.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <vector>

namespace vimvq::calib {

enum class Phase : int {
  kTargets,      // the full-precision block on the full-precision chain
  kImportances,  // mean x^2 of the layer inputs
  kCodebooks,    // k-means / rtn levels and hulls of every layer
  kInitialLoss,  // the block loss with the initial hard weights, over every calibration image
  kSoftWeights,  // building each layer's soft weight from ratios and codebook
  kForward,      // block forward and loss
  kBackward,
  kOptimiser,     // both Adam steps and zero_grad
  kHullUpdate,    // hull updates and confirm-above checks
  kConfirm,       // staged confirmations, hardening, and their loss reports
  kFinish,        // stored weights, final loss, layer records
  kChainAdvance,  // the quantized chain through the finished block
  kCount
};
constexpr int kPhaseCount = static_cast<int>(Phase::kCount);
const char* phase_name(Phase phase);

struct BlockProfile {
  int block = 0;
  std::array<double, kPhaseCount> seconds{};
  int64_t steps = 0;
  double first_step_seconds = 0;  // soft weights to optimiser of step 0 (warm-up included)
  double warmup_seconds = 0;      // block start to the end of its first step
  int64_t reference_steps = 0;
  double reference_step_seconds = 0;  // mean plain forward+backward, first (warm-up) step excluded
  double step_seconds() const;        // mean calibration step after the first, events excluded
};

struct Profile {
  double embed_seconds = 0;  // images through the embedding
  std::vector<BlockProfile> blocks;
};

// Collects a Profile. Times are taken after a device synchronisation, so on CUDA they are
// kernel times too (and profiling slows a CUDA run down).
class Profiler {
 public:
  explicit Profiler(c10::Device device, int reference_steps = 20)
      : device_(device), reference_steps_(reference_steps) {}
  void synchronize() const;
  int reference_steps() const { return reference_steps_; }
  BlockProfile& block(int index);  // the record of `index`, made on first use
  Profile& profile() { return profile_; }
  const Profile& profile() const { return profile_; }

 private:
  c10::Device device_;
  int reference_steps_;
  Profile profile_;
};

// Adds the scope's duration to the block's phase (block < 0: the embedding); does nothing when
// profiler is null.
class ScopedPhase {
 public:
  ScopedPhase(Profiler* profiler, int block, Phase phase);
  ~ScopedPhase();
  ScopedPhase(const ScopedPhase&) = delete;
  ScopedPhase& operator=(const ScopedPhase&) = delete;
  double elapsed() const;

 private:
  Profiler* profiler_;
  int block_;
  Phase phase_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace vimvq::calib
