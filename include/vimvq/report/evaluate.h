// Evaluating a model (and optionally a reference) on a data set: the loop shared by `vimvq eval`
// and `vimvq quantize --eval-data`.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "vimvq/data/dataset.h"
#include "vimvq/data/loader.h"
#include "vimvq/model/vim_model.h"
#include "vimvq/report/metrics.h"

namespace vimvq::report {

struct EvalSettings {
  int batch_size = 64;
  int threads = 2;  // decoding workers
  data::BadImagePolicy on_bad_image = data::BadImagePolicy::kFail;
  bool keep_predictions = false;
};

struct Prediction {
  size_t sample = 0;  // index into the data set
  int64_t label = -1;
  std::vector<int64_t> classes;  // top-5
  std::vector<float> probabilities;
};

struct EvalResult {
  ClassificationMetrics metrics;
  std::optional<ClassificationMetrics> reference_metrics;
  AgreementMetrics agreement;
  std::vector<data::SkippedImage> skipped;
  std::vector<Prediction> predictions;
  double loop_seconds = 0, model_seconds = 0;
  double images_per_second() const { return loop_seconds > 0 ? metrics.images() / loop_seconds : 0.0; }
};

// Throws vimvq::Error when the data set's classes or labels do not fit the model.
void check_labels(const data::Dataset& ds, const model::ModelMetadata& meta, const std::string& source);

EvalResult evaluate(model::VimModel& model, model::VimModel* reference, const data::Dataset& ds,
                    const EvalSettings& settings, const std::function<void(int64_t)>& advance = {});

// top1/top5 (null when unlabelled), per-class rows, throughput, skipped files, reference block.
nlohmann::json to_json(const EvalResult& r, const model::ModelMetadata& meta);

std::string class_label(const model::ModelMetadata& meta, int64_t c);

// [low, high] in percent: wilson_interval95 as the JSON reports carry it.
nlohmann::json interval95_json(int64_t successes, int64_t trials);

}  // namespace vimvq::report
