// `vimvq quantize` reads its staged packed file back and runs it beside the original model: on
// --eval-data for the accuracy, or else on images of the calibration folder, so that every run
// reports how far its outputs stray.
#pragma once

#include <c10/core/Device.h>

#include <optional>
#include <string>

#include "src/cli/calibration_images.h"
#include "vimvq/data/dataset.h"
#include "vimvq/report/evaluate.h"
#include "vimvq/report/quantize_report.h"

namespace vimvq::cli {

// The packed file against the original on `ds`, with a progress bar named `label`; the agreement
// goes into `counts` (its `data` left to the caller), the rest of the evaluation is returned.
report::EvalResult compare_with_original(const std::string& packed_path, const std::string& model_path,
                                         const data::Dataset& ds, const report::EvalSettings& settings,
                                         const c10::Device& device, const char* label,
                                         report::AgreementCounts& counts);

// Top-1 agreement and mean KL(original || packed) on up to `limit` images the calibration left
// out (the first of the seeded shuffle, so the same for a given seed), or, when it left out none,
// on the calibration images themselves. Labels are ignored; unreadable spare images are skipped,
// and when none is readable there is no record (a warning says so).
std::optional<report::AgreementRecord> measure_agreement(const std::string& packed_path,
                                                         const std::string& model_path,
                                                         const std::string& folder,
                                                         const CalibrationImages& calibration, int64_t limit,
                                                         int threads, const c10::Device& device);

}  // namespace vimvq::cli
