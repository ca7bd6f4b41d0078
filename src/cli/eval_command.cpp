// vimvq eval: top-1/top-5, per-class accuracy and throughput of a model on an image folder,
// optionally against a reference model (top-1 agreement, mean KL).
#include <chrono>
#include <cstdio>
#include <sstream>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <torch/script.h>

#include "src/cli/commands.h"
#include "src/cli/progress.h"
#include "src/cli/runtime.h"
#include "vimvq/data/loader.h"
#include "vimvq/model/vim_model.h"
#include "vimvq/report/metrics.h"
#include "vimvq/util/atomic_file.h"
#include "vimvq/util/error.h"

namespace vimvq::cli {
namespace {

using Clock = std::chrono::steady_clock;

std::string class_label(const model::ModelMetadata& meta, int64_t c) {
  if (c < 0) return "";
  return meta.class_names.empty() ? std::to_string(c) : meta.class_names[c];
}

std::string csv_quote(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) out += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return out + "\"";
}

void check_labels(const data::Dataset& ds, const model::ModelMetadata& meta, const EvalOptions& o) {
  if (!ds.classes.empty() && static_cast<int>(ds.classes.size()) != meta.num_classes) {
    throw Error(o.data + ": " + std::to_string(ds.classes.size()) + " class folders, but the model has " +
                std::to_string(meta.num_classes) + " classes");
  }
  for (const auto& s : ds.samples) {
    if (s.label >= meta.num_classes) {
      throw Error(o.labels.value_or(o.data) + ": label " + std::to_string(s.label) + " of " + s.path.string() +
                  " is out of range for a model with " + std::to_string(meta.num_classes) + " classes");
    }
  }
}

void check_same_input(const model::ModelMetadata& a, const model::ModelMetadata& b, const std::string& ref) {
  if (a.num_classes != b.num_classes) throw Error(ref + ": reference model has a different number of classes");
  if (a.preprocess.channels != b.preprocess.channels || a.preprocess.crop != b.preprocess.crop ||
      a.preprocess.resize != b.preprocess.resize || a.preprocess.mean != b.preprocess.mean ||
      a.preprocess.std != b.preprocess.std) {
    throw Error(ref + ": reference model expects a different input transform");
  }
}

}  // namespace

int run_eval(const EvalOptions& o) {
  const auto t_start = Clock::now();
  const int threads = configure_threads(o.threads);
  const c10::Device device = parse_device(o.device);
  if (o.batch_size < 1) throw Error("--batch-size must be at least 1");
  data::BadImagePolicy policy;
  if (o.on_bad_image == "fail") {
    policy = data::BadImagePolicy::kFail;
  } else if (o.on_bad_image == "skip") {
    policy = data::BadImagePolicy::kSkip;
  } else {
    throw Error("--on-bad-image '" + o.on_bad_image + "': use fail or skip");
  }

  auto model = model::VimModel::load(o.model, device);
  const auto& meta = model.metadata();
  std::optional<model::VimModel> reference;
  if (o.reference) {
    reference = model::VimModel::load(*o.reference, device);
    check_same_input(meta, reference->metadata(), *o.reference);
  }
  data::Dataset ds = o.labels ? data::list_with_label_file(o.data, *o.labels, meta.class_names, o.label_base)
                              : data::open_dataset(o.data, std::nullopt, meta.class_names);
  if (o.limit > 0 && static_cast<size_t>(o.limit) < ds.samples.size()) ds.samples.resize(o.limit);
  check_labels(ds, meta, o);
  spdlog::info("model {} ({}, {} blocks, {} classes, scan {}), {} images from {}, device {}, {} threads", o.model,
               meta.config_name, meta.num_blocks, meta.num_classes, meta.scan, ds.samples.size(), o.data,
               device.str(), threads);

  report::ClassificationMetrics metrics(meta.num_classes), ref_metrics(meta.num_classes);
  report::AgreementMetrics agreement;
  std::ostringstream predictions;
  if (o.predictions) predictions << "path,label,pred1,prob1,pred2,prob2,pred3,prob3,pred4,prob4,pred5,prob5\n";
  std::vector<data::SkippedImage> skipped;

  data::LoaderOptions lo;
  lo.batch_size = o.batch_size;
  lo.threads = threads;
  lo.on_bad_image = policy;
  const auto t_loop = Clock::now();
  double model_seconds = 0.0;
  {
    data::BatchLoader loader(ds, meta.preprocess, lo);
    Progress progress("eval", static_cast<int64_t>(ds.samples.size()), "img");
    c10::InferenceMode inference;
    const int64_t c = meta.preprocess.channels, s = meta.preprocess.crop;
    while (auto batch = loader.next()) {
      for (auto& sk : batch->skipped) {
        spdlog::warn("skipping {}", sk.reason);
        skipped.push_back(sk);
      }
      progress.advance(static_cast<int64_t>(batch->size() + batch->skipped.size()));
      if (batch->size() == 0) continue;
      const int64_t n = static_cast<int64_t>(batch->size());
      const at::Tensor images = at::from_blob(batch->pixels.data(), {n, c, s, s}, at::kFloat).to(device);
      const auto t0 = Clock::now();
      const at::Tensor logits = model.forward(images).to(at::kCPU);
      at::Tensor ref_logits;
      if (reference) ref_logits = reference->forward(images).to(at::kCPU);
      model_seconds += std::chrono::duration<double>(Clock::now() - t0).count();
      metrics.add(logits, batch->labels);
      if (reference) {
        ref_metrics.add(ref_logits, batch->labels);
        agreement.add(logits, ref_logits);
      }
      if (o.predictions) {
        const auto top = at::softmax(logits, 1).topk(std::min<int64_t>(5, logits.size(1)), 1);
        const at::Tensor probs = std::get<0>(top).contiguous(), classes = std::get<1>(top).contiguous();
        for (int64_t i = 0; i < n; ++i) {
          predictions << csv_quote(ds.samples[batch->sample_indices[i]].path.string()) << ','
                      << csv_quote(class_label(meta, batch->labels[i]));
          for (int64_t j = 0; j < classes.size(1); ++j) {
            char prob[32];
            std::snprintf(prob, sizeof prob, "%.6f", probs[i][j].item<float>());
            predictions << ',' << csv_quote(class_label(meta, classes[i][j].item<int64_t>())) << ',' << prob;
          }
          predictions << '\n';
        }
      }
    }
    progress.finish();
  }
  const double loop_seconds = std::chrono::duration<double>(Clock::now() - t_loop).count();
  const double wall_seconds = std::chrono::duration<double>(Clock::now() - t_start).count();
  const double ips = loop_seconds > 0 ? metrics.images() / loop_seconds : 0.0;

  nlohmann::json r;
  r["tool"] = "vimvq";
  r["command"] = "eval";
  r["model"] = o.model;
  r["data"] = o.data;
  r["device"] = device.str();
  r["threads"] = threads;
  r["batch_size"] = o.batch_size;
  r["images"] = metrics.images();
  r["labelled"] = metrics.labelled();
  r["skipped"] = skipped.size();
  r["skipped_files"] = nlohmann::json::array();
  for (const auto& sk : skipped) r["skipped_files"].push_back({{"path", sk.path}, {"reason", sk.reason}});
  r["top1"] = metrics.labelled() ? nlohmann::json(metrics.top1()) : nlohmann::json(nullptr);
  r["top5"] = metrics.labelled() ? nlohmann::json(metrics.top5()) : nlohmann::json(nullptr);
  r["per_class"] = nlohmann::json::array();
  for (int cls = 0; cls < metrics.num_classes(); ++cls) {
    if (metrics.class_total(cls) == 0) continue;
    r["per_class"].push_back({{"class", cls},
                              {"name", class_label(meta, cls)},
                              {"images", metrics.class_total(cls)},
                              {"top1", 100.0 * metrics.class_correct(cls) / metrics.class_total(cls)}});
  }
  r["images_per_second"] = ips;
  r["model_seconds"] = model_seconds;
  r["loop_seconds"] = loop_seconds;
  r["wall_seconds"] = wall_seconds;
  if (reference) {
    r["reference"] = {{"model", *o.reference},
                      {"top1", ref_metrics.labelled() ? nlohmann::json(ref_metrics.top1()) : nlohmann::json(nullptr)},
                      {"top5", ref_metrics.labelled() ? nlohmann::json(ref_metrics.top5()) : nlohmann::json(nullptr)},
                      {"top1_agreement", agreement.top1_agreement()},
                      {"mean_kl", agreement.mean_kl()}};
  }

  std::printf("\n%s on %s\n", o.model.c_str(), o.data.c_str());
  std::printf("  images      %lld (%lld labelled, %zu skipped)\n", static_cast<long long>(metrics.images()),
              static_cast<long long>(metrics.labelled()), skipped.size());
  if (metrics.labelled()) std::printf("  top-1       %.2f %%\n  top-5       %.2f %%\n", metrics.top1(), metrics.top5());
  if (reference) {
    if (ref_metrics.labelled()) std::printf("  reference   top-1 %.2f %%  (%s)\n", ref_metrics.top1(), o.reference->c_str());
    std::printf("  agreement   %.2f %% top-1, mean KL %.5f\n", agreement.top1_agreement(), agreement.mean_kl());
  }
  std::printf("  throughput  %.1f images/s (%.1f s; model %.1f s), %d threads, %s\n", ips, loop_seconds, model_seconds,
              threads, device.str().c_str());
  if (metrics.labelled() && metrics.num_classes() <= 20) {
    std::printf("  per class  ");
    for (const auto& pc : r["per_class"]) {
      std::printf(" %s %.1f", pc["name"].get<std::string>().c_str(), pc["top1"].get<double>());
    }
    std::printf("\n");
  }
  if (o.report) write_file_atomically(*o.report, r.dump(2) + "\n");
  if (o.predictions) write_file_atomically(*o.predictions, predictions.str());
  return 0;
}

}  // namespace vimvq::cli
