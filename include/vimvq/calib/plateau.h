// Tells when a stage's loss has stopped improving, from one mean task loss per epoch (early
// stopping, docs/METHOD.md section 5). No tensors: unit-tested as sequences.
#pragma once

namespace vimvq::calib {

class PlateauDetector {
 public:
  // tolerance: the relative improvement on the stage's best epoch that still counts (0: never a
  // plateau); patience: how many epochs in a row without one make a plateau.
  PlateauDetector(double tolerance, int patience);

  // A new stage: its loss level differs (a confirmation moves it), so the best starts afresh.
  void reset();
  // One epoch's mean task loss, every step of it inside the current stage. True on a plateau.
  bool add(double epoch_loss);

 private:
  double tolerance_;
  int patience_;
  bool has_best_ = false;
  double best_ = 0;
  int stale_ = 0;
};

}  // namespace vimvq::calib
