#include "src/cli/agreement.h"

#include <algorithm>

#include "src/cli/progress.h"
#include "vimvq/format/load_model.h"
#include "vimvq/log/log.h"

namespace vimvq::cli {
namespace {

// The images to compare on, unlabelled: a calibration folder's class folders are not the model's
// classes, and only the two models' outputs are compared.
data::Dataset agreement_images(const CalibrationImages& calibration, int64_t limit) {
  const auto& from = calibration.spare.empty() ? calibration.used : calibration.spare;
  data::Dataset ds;
  ds.samples.assign(from.begin(), from.begin() + std::min<int64_t>(limit, static_cast<int64_t>(from.size())));
  std::sort(ds.samples.begin(), ds.samples.end(), [](auto& a, auto& b) { return a.path < b.path; });
  for (auto& s : ds.samples) s.label = -1;
  return ds;
}

}  // namespace

report::EvalResult compare_with_original(const std::string& packed_path, const std::string& model_path,
                                         const data::Dataset& ds, const report::EvalSettings& settings,
                                         const c10::Device& device, const char* label,
                                         report::AgreementCounts& counts) {
  auto packed = format::load_model(packed_path, device);  // exactly what will be committed
  auto original = format::load_model(model_path, device);
  Progress bar(label, static_cast<int64_t>(ds.samples.size()), "img");
  auto er = report::evaluate(packed, &original, ds, settings, [&](int64_t n) { bar.advance(n); });
  bar.finish();
  counts.images = er.agreement.images();
  counts.agreeing = er.agreement.top1_agreeing();
  counts.mean_kl = er.agreement.mean_kl();
  return er;
}

std::optional<report::AgreementRecord> measure_agreement(const std::string& packed_path,
                                                         const std::string& model_path,
                                                         const std::string& folder,
                                                         const CalibrationImages& calibration, int64_t limit,
                                                         int threads, const c10::Device& device) {
  report::AgreementRecord a;
  a.data = folder;
  a.held_out = !calibration.spare.empty();
  const data::Dataset ds = agreement_images(calibration, limit);
  report::EvalSettings es;
  es.threads = threads;
  es.on_bad_image = data::BadImagePolicy::kSkip;  // spare images are a bonus, not the run's input
  const auto er = compare_with_original(packed_path, model_path, ds, es, device, "agreement", a);
  a.skipped = static_cast<int64_t>(er.skipped.size());
  if (a.images == 0) {
    log::warn("no agreement check: none of the " + std::to_string(a.skipped) +
              " images it would use could be read");
    return std::nullopt;
  }
  return a;
}

}  // namespace vimvq::cli
