// What a calibration schedule asks of a layer's quantizer after an optimisation step
// (docs/METHOD.md sections 4 to 6). calib::plan_step decides when; vq::LayerQuantizer reacts.
#pragma once

namespace vimvq::vq {

enum class EventKind {
  kHullUpdate,         // swap the weakest hull member for a nearer codeword (section 4)
  kConfirmAbove,       // confirm every free sub-vector whose max ratio exceeds `value` (section 5)
  kConfirmToFraction,  // confirm the most decided free sub-vectors until `value` of the layer is (section 5)
  kHardenAll,          // confirm whatever is still free; the codebook-only fine-tune follows
};

struct Event {
  EventKind kind;
  double value = 0;  // threshold or fraction
  bool operator==(const Event& o) const { return kind == o.kind && value == o.value; }
};

}  // namespace vimvq::vq
