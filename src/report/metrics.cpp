#include "vimvq/report/metrics.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

#include "vimvq/util/error.h"
#include "vimvq/util/strprintf.h"

namespace vimvq::report {

ClassificationMetrics::ClassificationMetrics(int num_classes)
    : class_total_(num_classes, 0), class_correct_(num_classes, 0) {}

void ClassificationMetrics::add(const at::Tensor& logits, const std::vector<int64_t>& labels) {
  const int64_t n = logits.size(0), classes = logits.size(1);
  if (static_cast<size_t>(n) != labels.size()) throw Error("metrics: logits and labels disagree in count");
  const int64_t k = std::min<int64_t>(5, classes);
  const at::Tensor top = std::get<1>(logits.detach().to(at::kCPU).topk(k, 1)).contiguous();
  const int64_t* t = top.data_ptr<int64_t>();
  images_ += n;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t label = labels[i];
    if (label < 0) continue;
    if (label >= num_classes()) throw Error("metrics: label " + std::to_string(label) + " out of range");
    ++labelled_;
    ++class_total_[label];
    if (t[i * k] == label) {
      ++top1_;
      ++class_correct_[label];
    }
    if (std::find(t + i * k, t + (i + 1) * k, label) != t + (i + 1) * k) ++top5_;
  }
}

void AgreementMetrics::add(const at::Tensor& logits, const at::Tensor& reference_logits) {
  const at::Tensor lp = at::log_softmax(logits.detach().to(at::kCPU).to(at::kDouble), 1);
  const at::Tensor lq = at::log_softmax(reference_logits.detach().to(at::kCPU).to(at::kDouble), 1);
  kl_sum_ += (lq.exp() * (lq - lp)).sum().item<double>();
  agree_ += (lp.argmax(1) == lq.argmax(1)).sum().item<int64_t>();
  images_ += logits.size(0);
}

Interval wilson_interval95(int64_t successes, int64_t trials) {
  if (trials <= 0) return {0.0, 1.0};
  const double z2 = 1.959963984540054 * 1.959963984540054, n = static_cast<double>(trials);
  const double p = static_cast<double>(successes) / n;
  const double center = (p + z2 / (2 * n)) / (1 + z2 / n);
  const double half = std::sqrt(z2 * (p * (1 - p) / n + z2 / (4 * n * n))) / (1 + z2 / n);
  // At 0 or all successes the bound is exactly 0 or 1; the formula leaves an ulp of rounding.
  return {successes <= 0 ? 0.0 : std::max(0.0, center - half),
          successes >= trials ? 1.0 : std::min(1.0, center + half)};
}

std::string interval95_text(int64_t successes, int64_t trials) {
  const Interval ci = wilson_interval95(successes, trials);
  return strprintf("95 %% interval %.2f-%.2f", 100.0 * ci.low, 100.0 * ci.high);
}

}  // namespace vimvq::report
