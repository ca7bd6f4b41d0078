// Classification metrics over logits: top-1/top-5, per-class accuracy, and agreement with a
// reference model (top-1 agreement, mean KL(reference || model) of the softmax distributions).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace vimvq::report {

class ClassificationMetrics {
 public:
  explicit ClassificationMetrics(int num_classes);
  // logits: (n, num_classes); labels: n values, -1 for unlabelled images (counted, not scored).
  void add(const at::Tensor& logits, const std::vector<int64_t>& labels);

  int64_t images() const { return images_; }
  int64_t labelled() const { return labelled_; }
  int64_t top1_correct() const { return top1_; }
  double top1() const { return labelled_ ? 100.0 * top1_ / labelled_ : 0.0; }
  double top5() const { return labelled_ ? 100.0 * top5_ / labelled_ : 0.0; }
  int64_t class_total(int c) const { return class_total_[c]; }
  int64_t class_correct(int c) const { return class_correct_[c]; }
  int num_classes() const { return static_cast<int>(class_total_.size()); }

 private:
  int64_t images_ = 0, labelled_ = 0, top1_ = 0, top5_ = 0;
  std::vector<int64_t> class_total_, class_correct_;
};

class AgreementMetrics {
 public:
  void add(const at::Tensor& logits, const at::Tensor& reference_logits);
  int64_t images() const { return images_; }
  int64_t top1_agreeing() const { return agree_; }
  double top1_agreement() const { return images_ ? 100.0 * agree_ / images_ : 0.0; }
  double mean_kl() const { return images_ ? kl_sum_ / images_ : 0.0; }

 private:
  int64_t images_ = 0, agree_ = 0;
  double kl_sum_ = 0.0;
};

// The 95 % Wilson score interval of a proportion seen as `successes` of `trials`, as fractions:
// unlike the normal approximation it stays inside [0, 1] and is not empty at 0 or all successes
// (256 of 256 agreeing gives [0.985, 1]). {0, 1} for no trials.
struct Interval {
  double low, high;
};
Interval wilson_interval95(int64_t successes, int64_t trials);
// "95 % interval 49.02-94.33": the interval above in percent, as the reports print it.
std::string interval95_text(int64_t successes, int64_t trials);

}  // namespace vimvq::report
