#include "vimvq/calib/plateau.h"

namespace vimvq::calib {

PlateauDetector::PlateauDetector(double tolerance, int patience)
    : tolerance_(tolerance), patience_(patience) {}

void PlateauDetector::reset() {
  has_best_ = false;
  stale_ = 0;
}

bool PlateauDetector::add(double epoch_loss) {
  if (tolerance_ <= 0) return false;
  if (!has_best_ || epoch_loss < best_ * (1 - tolerance_)) {
    has_best_ = true;
    best_ = epoch_loss;
    stale_ = 0;
    return false;
  }
  if (epoch_loss < best_) best_ = epoch_loss;
  return ++stale_ >= patience_;
}

}  // namespace vimvq::calib
