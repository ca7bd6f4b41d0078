// vimvq eval: top-1/top-5, per-class accuracy and throughput of a model on an image folder,
// optionally against a reference model (top-1 agreement, mean KL).
#include <torch/script.h>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "src/cli/commands.h"
#include "src/cli/progress.h"
#include "src/cli/runtime.h"
#include "vimvq/format/load_model.h"
#include "vimvq/log/log.h"
#include "vimvq/report/evaluate.h"
#include "vimvq/report/quantize_report.h"
#include "vimvq/util/error.h"
#include "vimvq/util/output_set.h"
#include "vimvq/util/strprintf.h"

namespace vimvq::cli {
namespace {

using Clock = std::chrono::steady_clock;

std::string csv_quote(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) out += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return out + "\"";
}

void check_same_input(const model::ModelMetadata& a, const model::ModelMetadata& b, const std::string& ref) {
  if (a.num_classes != b.num_classes)
    throw Error(ref + ": reference model has a different number of classes");
  if (a.preprocess.channels != b.preprocess.channels || a.preprocess.crop != b.preprocess.crop ||
      a.preprocess.resize != b.preprocess.resize || a.preprocess.mean != b.preprocess.mean ||
      a.preprocess.std != b.preprocess.std) {
    throw Error(ref + ": reference model expects a different input transform");
  }
}

std::string predictions_csv(const report::EvalResult& r, const data::Dataset& ds,
                            const model::ModelMetadata& meta) {
  std::ostringstream out;
  out << "path,label,pred1,prob1,pred2,prob2,pred3,prob3,pred4,prob4,pred5,prob5\n";
  for (const auto& p : r.predictions) {
    out << csv_quote(ds.samples[p.sample].path.string()) << ','
        << csv_quote(report::class_label(meta, p.label));
    for (size_t j = 0; j < p.classes.size(); ++j) {
      char prob[32];
      std::snprintf(prob, sizeof prob, "%.6f", p.probabilities[j]);
      out << ',' << csv_quote(report::class_label(meta, p.classes[j])) << ',' << prob;
    }
    out << '\n';
  }
  return out.str();
}

data::BadImagePolicy parse_bad_image_policy(const std::string& name) {
  if (name == "fail") return data::BadImagePolicy::kFail;
  if (name == "skip") return data::BadImagePolicy::kSkip;
  throw Error("--on-bad-image '" + name + "': use fail or skip");
}

// The console summary: counts, accuracy, agreement, throughput, per-class top-1 for small sets.
void print_summary(const EvalOptions& o, const report::EvalResult& r, const nlohmann::json& j, int threads,
                   const c10::Device& device) {
  const auto& m = r.metrics;
  std::printf("\n%s on %s\n", o.model.c_str(), o.data.c_str());
  std::printf("  images      %lld (%lld labelled, %zu skipped)\n", static_cast<long long>(m.images()),
              static_cast<long long>(m.labelled()), r.skipped.size());
  if (m.labelled()) {
    std::printf("  top-1       %.2f %% (%s)\n  top-5       %.2f %%\n", m.top1(),
                report::interval95_text(m.top1_correct(), m.labelled()).c_str(), m.top5());
  }
  if (r.reference_metrics) {
    if (r.reference_metrics->labelled()) {
      std::printf("  reference   top-1 %.2f %%  (%s)\n", r.reference_metrics->top1(), o.reference->c_str());
    }
    std::printf("  agreement   %.2f %% top-1 (%s), mean KL %.5f\n", r.agreement.top1_agreement(),
                report::interval95_text(r.agreement.top1_agreeing(), r.agreement.images()).c_str(),
                r.agreement.mean_kl());
  }
  std::printf("  throughput  %.1f images/s (%.1f s; model %.1f s), %d threads, %s\n", r.images_per_second(),
              r.loop_seconds, r.model_seconds, threads, device.str().c_str());
  if (m.labelled() && m.num_classes() <= 20) {
    std::printf("  per class  ");
    for (const auto& pc : j["per_class"]) {
      std::printf(" %s %.1f", pc["name"].get<std::string>().c_str(), pc["top1"].get<double>());
    }
    std::printf("\n");
  }
}

// Every file the run reads and writes, refused now if an output is an input, another output, or
// lies inside the data folder; then the options that need no file.
void declare_eval_files(const EvalOptions& o, OutputSet& files) {
  if (o.batch_size < 1) throw Error("--batch-size must be at least 1");
  if (o.limit < 0) throw Error("--limit " + std::to_string(o.limit) + ": must be 0 (all images) or more");
  if (o.label_base && !o.labels) throw Error("--label-base applies to a --labels file, and none was given");
  files.add_input(o.model, "model");
  files.add_input(o.data, "data folder");
  if (o.reference) files.add_input(*o.reference, "--reference model");
  if (o.labels) files.add_input(*o.labels, "--labels file");
  if (o.report) files.add_output(*o.report, "--report");
  if (o.predictions) files.add_output(*o.predictions, "--predictions");
}

// The model as it will run: a packed one on its codes unless --dense.
model::VimModel load_eval_model(const EvalOptions& o, const c10::Device& device, int& compressed_layers) {
  auto model =
      format::load_model(o.model, device, o.dense ? format::LoadForm::kDense : format::LoadForm::kCompressed,
                         &compressed_layers);
  return model;
}

data::Dataset eval_dataset(const EvalOptions& o, const model::ModelMetadata& meta) {
  data::Dataset ds = o.labels ? data::list_with_label_file(o.data, *o.labels, meta.class_names, o.label_base,
                                                           meta.num_classes)
                              : data::open_dataset(o.data, std::nullopt, meta.class_names);
  if (o.limit > 0 && static_cast<size_t>(o.limit) < ds.samples.size()) ds.samples.resize(o.limit);
  report::check_labels(ds, meta, o.labels.value_or(o.data));
  return ds;
}

// The --report JSON: the metrics, and what ran them on what.
nlohmann::json eval_json(const EvalOptions& o, const report::EvalResult& r, const model::ModelMetadata& meta,
                         const c10::Device& device, int threads, int compressed_layers,
                         const model::VimModel::ResidentBytes& resident) {
  nlohmann::json j = report::to_json(r, meta);
  j["tool"] = "vimvq";
  j["command"] = "eval";
  j["model"] = o.model;
  j["data"] = o.data;
  j["device"] = device.str();
  j["threads"] = threads;
  j["batch_size"] = o.batch_size;
  j["compressed_layers"] = compressed_layers;
  j["resident_bytes"] = report::resident_json(resident.codes, resident.codebooks, resident.rest);
  if (o.reference) j["reference"]["model"] = *o.reference;
  return j;
}

}  // namespace

int run_eval(const EvalOptions& o) {
  const auto t_start = Clock::now();
  const int threads = configure_threads(o.threads);
  const c10::Device device = parse_device(o.device);
  report::EvalSettings settings;
  settings.batch_size = o.batch_size;
  settings.threads = threads;
  settings.on_bad_image = parse_bad_image_policy(o.on_bad_image);
  settings.keep_predictions = o.predictions.has_value();
  OutputSet files;
  declare_eval_files(o, files);
  set_interrupt_message("eval of " + o.model + " stopped; nothing was written");
  run_graphs_unoptimized();

  int compressed_layers = 0;
  auto model = load_eval_model(o, device, compressed_layers);
  const auto resident = model.resident_bytes();
  if (compressed_layers > 0)
    log::info(
        strprintf("%s: %d quantized layers run compressed (--dense rebuilds them); resident %.2f MB: "
                  "codes %.2f, codebooks %.2f, the rest %.2f",
                  o.model.c_str(), compressed_layers, resident.total() / 1e6, resident.codes / 1e6,
                  resident.codebooks / 1e6, resident.rest / 1e6));
  const auto& meta = model.metadata();
  std::optional<model::VimModel> reference;
  if (o.reference) {
    reference = format::load_model(*o.reference, device);
    check_same_input(meta, reference->metadata(), *o.reference);
  }
  keep_freed_memory_mapped();  // the models are loaded: what follows reuses its activations
  const data::Dataset ds = eval_dataset(o, meta);
  log::info(
      strprintf("model %s (%s, %d blocks, %d classes, scan %s), %zu images from %s, device %s, %d threads",
                o.model.c_str(), meta.config_name.c_str(), meta.num_blocks, meta.num_classes,
                meta.scan.c_str(), ds.samples.size(), o.data.c_str(), device.str().c_str(), threads));

  Progress progress("eval", static_cast<int64_t>(ds.samples.size()), "img");
  const auto r = report::evaluate(model, reference ? &*reference : nullptr, ds, settings,
                                  [&](int64_t n) { progress.advance(n); });
  progress.finish();
  if (r.metrics.images() == 0)
    throw Error(o.data + ": no image could be read (" + std::to_string(r.skipped.size()) +
                " skipped), so there is nothing to report");

  nlohmann::json j = eval_json(o, r, meta, device, threads, compressed_layers, resident);
  j["wall_seconds"] = std::chrono::duration<double>(Clock::now() - t_start).count();

  print_summary(o, r, j, threads, device);
  if (o.report) files.stage(*o.report, j.dump(2) + "\n");
  if (o.predictions) files.stage(*o.predictions, predictions_csv(r, ds, meta));
  files.commit();
  return 0;
}

}  // namespace vimvq::cli
