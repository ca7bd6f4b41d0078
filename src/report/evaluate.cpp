#include "vimvq/report/evaluate.h"

#include <torch/script.h>

#include <chrono>

#include "vimvq/log/log.h"
#include "vimvq/util/error.h"

namespace vimvq::report {

using Clock = std::chrono::steady_clock;

std::string class_label(const model::ModelMetadata& meta, int64_t c) {
  if (c < 0) return "";
  const bool named = c < static_cast<int64_t>(meta.class_names.size());
  return named ? meta.class_names[static_cast<size_t>(c)] : std::to_string(c);
}

void check_labels(const data::Dataset& ds, const model::ModelMetadata& meta, const std::string& source) {
  if (!ds.classes.empty() && static_cast<int>(ds.classes.size()) != meta.num_classes) {
    throw Error(source + ": " + std::to_string(ds.classes.size()) + " class folders, but the model has " +
                std::to_string(meta.num_classes) + " classes");
  }
  for (const auto& s : ds.samples) {
    if (s.label >= meta.num_classes) {
      throw Error(source + ": label " + std::to_string(s.label) + " of " + s.path.string() +
                  " is out of range for a model with " + std::to_string(meta.num_classes) + " classes");
    }
  }
}

EvalResult evaluate(model::VimModel& model, model::VimModel* reference, const data::Dataset& ds,
                    const EvalSettings& settings, const std::function<void(int64_t)>& advance) {
  const auto& meta = model.metadata();
  EvalResult r{ClassificationMetrics(meta.num_classes), std::nullopt, {}, {}, {}, 0, 0};
  if (reference) r.reference_metrics.emplace(meta.num_classes);
  data::LoaderOptions lo;
  lo.batch_size = settings.batch_size;
  lo.threads = settings.threads;
  lo.on_bad_image = settings.on_bad_image;
  const auto t_loop = Clock::now();
  data::BatchLoader loader(ds, meta.preprocess, lo);
  c10::InferenceMode inference;
  const int64_t c = meta.preprocess.channels, s = meta.preprocess.crop;
  while (auto batch = loader.next()) {
    for (auto& sk : batch->skipped) {
      log::warn("skipping " + sk.reason);
      r.skipped.push_back(sk);
    }
    if (advance) advance(static_cast<int64_t>(batch->size() + batch->skipped.size()));
    if (batch->size() == 0) continue;
    const int64_t n = static_cast<int64_t>(batch->size());
    const at::Tensor images =
        at::from_blob(batch->pixels.data(), {n, c, s, s}, at::kFloat).to(model.device());
    const auto t0 = Clock::now();
    const at::Tensor logits = model.forward(images).to(at::kCPU);
    at::Tensor ref_logits;
    if (reference) ref_logits = reference->forward(images).to(at::kCPU);
    r.model_seconds += std::chrono::duration<double>(Clock::now() - t0).count();
    r.metrics.add(logits, batch->labels);
    if (reference) {
      r.reference_metrics->add(ref_logits, batch->labels);
      r.agreement.add(logits, ref_logits);
    }
    if (settings.keep_predictions) {
      const auto top = at::softmax(logits, 1).topk(std::min<int64_t>(5, logits.size(1)), 1);
      const at::Tensor probs = std::get<0>(top).contiguous(), classes = std::get<1>(top).contiguous();
      for (int64_t i = 0; i < n; ++i) {
        Prediction p;
        p.sample = batch->sample_indices[i];
        p.label = batch->labels[i];
        p.classes.assign(classes[i].data_ptr<int64_t>(), classes[i].data_ptr<int64_t>() + classes.size(1));
        p.probabilities.assign(probs[i].data_ptr<float>(), probs[i].data_ptr<float>() + probs.size(1));
        r.predictions.push_back(std::move(p));
      }
    }
  }
  r.loop_seconds = std::chrono::duration<double>(Clock::now() - t_loop).count();
  return r;
}

nlohmann::json to_json(const EvalResult& r, const model::ModelMetadata& meta) {
  auto score = [](const ClassificationMetrics& m, double v) {
    return m.labelled() ? nlohmann::json(v) : nlohmann::json(nullptr);
  };
  nlohmann::json j;
  j["images"] = r.metrics.images();
  j["labelled"] = r.metrics.labelled();
  j["skipped"] = r.skipped.size();
  j["skipped_files"] = nlohmann::json::array();
  for (const auto& sk : r.skipped) j["skipped_files"].push_back({{"path", sk.path}, {"reason", sk.reason}});
  j["top1"] = score(r.metrics, r.metrics.top1());
  if (r.metrics.labelled())
    j["top1_interval95"] = interval95_json(r.metrics.top1_correct(), r.metrics.labelled());
  j["top5"] = score(r.metrics, r.metrics.top5());
  j["per_class"] = nlohmann::json::array();
  for (int cls = 0; cls < r.metrics.num_classes(); ++cls) {
    if (r.metrics.class_total(cls) == 0) continue;
    j["per_class"].push_back({{"class", cls},
                              {"name", class_label(meta, cls)},
                              {"images", r.metrics.class_total(cls)},
                              {"top1", 100.0 * r.metrics.class_correct(cls) / r.metrics.class_total(cls)}});
  }
  j["images_per_second"] = r.images_per_second();
  j["model_seconds"] = r.model_seconds;
  j["loop_seconds"] = r.loop_seconds;
  if (r.reference_metrics) {
    const auto& rm = *r.reference_metrics;
    j["reference"] = {
        {"top1", score(rm, rm.top1())},
        {"top5", score(rm, rm.top5())},
        {"top1_agreement", r.agreement.top1_agreement()},
        {"top1_agreement_interval95", interval95_json(r.agreement.top1_agreeing(), r.agreement.images())},
        {"mean_kl", r.agreement.mean_kl()}};
  }
  return j;
}

nlohmann::json interval95_json(int64_t successes, int64_t trials) {
  const Interval ci = wilson_interval95(successes, trials);
  return nlohmann::json::array({100.0 * ci.low, 100.0 * ci.high});
}

}  // namespace vimvq::report
