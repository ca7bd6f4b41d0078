// vimvq quantize: calibrate, pack, report. Parses nothing itself: options arrive in QuantizeOptions.
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <torch/script.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "src/cli/commands.h"
#include "src/cli/progress.h"
#include "src/cli/runtime.h"
#include "vimvq/calib/calibrate.h"
#include "vimvq/data/loader.h"
#include "vimvq/format/packed_checkpoint.h"
#include "vimvq/report/evaluate.h"
#include "vimvq/util/atomic_file.h"
#include "vimvq/util/error.h"
#include "vimvq/vq/layout.h"

namespace vimvq::cli {
namespace {

using Clock = std::chrono::steady_clock;
const char* kVersion = "0.1.0";

calib::CalibrationParams resolve_params(const QuantizeOptions& o) {
  calib::CalibrationParams p;
  if (o.config) {
    std::ifstream in(*o.config);
    if (!in) throw Error(*o.config + ": cannot open config");
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      throw Error(*o.config + ": not valid JSON (" + e.what() + ")");
    }
    calib::apply_json(p, j, *o.config);
  }
  if (o.bits) p.bits = *o.bits;
  if (o.method) p.method = *o.method;
  if (o.no_hull_update) p.hull_update = false;
  if (o.no_incremental) p.incremental = false;
  if (o.batch_size) p.batch_size = *o.batch_size;
  if (o.iters) p.iterations = *o.iters;
  if (o.seed) p.seed = *o.seed;
  if (!o.include.empty()) p.include = o.include;
  if (!o.exclude.empty()) p.exclude = o.exclude;
  for (const auto& kv : o.sets) {
    const auto eq = kv.find('=');
    if (eq == std::string::npos) throw Error("--set " + kv + ": expected key=value");
    calib::set_param(p, kv.substr(0, eq), kv.substr(eq + 1));
  }
  calib::validate(p);
  return p;
}

void check_output_writable(const std::string& path) {
  const std::filesystem::path out(path);
  const auto dir = out.has_parent_path() ? out.parent_path() : std::filesystem::path(".");
  if (!std::filesystem::is_directory(dir))
    throw Error(path + ": cannot write (folder " + dir.string() + " does not exist)");
  if (::access(dir.c_str(), W_OK) != 0)
    throw Error(path + ": cannot write (folder " + dir.string() + " is not writable)");
  if (std::filesystem::is_directory(out)) throw Error(path + ": is a folder, expected a file name");
}

uint64_t fnv1a(uint64_t h, const std::string& s) {
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

// A seeded, sorted subset of `count` images, loaded and preprocessed into one tensor.
at::Tensor load_calibration(data::Dataset& ds, int count, uint64_t seed, const model::ModelMetadata& meta,
                            int threads, const std::string& dir, std::string* list_hash) {
  if (count < 1) throw Error("--calib-size must be at least 1");
  if (static_cast<size_t>(count) < ds.samples.size()) {
    std::mt19937_64 rng(seed);
    std::shuffle(ds.samples.begin(), ds.samples.end(), rng);
    ds.samples.resize(count);
    std::sort(ds.samples.begin(), ds.samples.end(), [](auto& a, auto& b) { return a.path < b.path; });
  }
  uint64_t h = 1469598103934665603ull;
  for (const auto& s : ds.samples) h = fnv1a(h, std::filesystem::relative(s.path, dir).string() + "\n");
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  *list_hash = hex;
  data::LoaderOptions lo;
  lo.batch_size = 64;
  lo.threads = threads;
  data::BatchLoader loader(ds, meta.preprocess, lo);
  std::vector<float> pixels;
  int64_t n = 0;
  while (auto b = loader.next()) {
    pixels.insert(pixels.end(), b->pixels.begin(), b->pixels.end());
    n += static_cast<int64_t>(b->size());
  }
  const int64_t c = meta.preprocess.channels, s = meta.preprocess.crop;
  return at::from_blob(pixels.data(), {n, c, s, s}, at::kFloat).clone();
}

struct SizeSummary {
  int64_t quantized_weights = 0, index_bits = 0, codebook_bits = 0;
};

std::string markdown(const nlohmann::json& r) {
  std::ostringstream md;
  char buf[512];
  md << "# vimvq quantize report\n\n";
  md << "- model: `" << r["model"].get<std::string>() << "`\n- output: `" << r["output"].get<std::string>()
     << "`\n";
  md << "- method: " << r["params"]["method"].get<std::string>() << ", " << r["params"]["bits"].get<int>()
     << " bits, seed " << r["params"]["seed"].get<uint64_t>() << "\n";
  const auto& sz = r["size"];
  std::snprintf(
      buf, sizeof buf,
      "- size: %.3f MB fp32 -> %.3f MB packed (%.2fx); quantized weights: %.3f index + %.3f codebook = "
      "%.3f bits per weight; whole file %.3f bits per parameter\n",
      sz["fp32_bytes"].get<double>() / 1e6, sz["packed_bytes"].get<double>() / 1e6,
      sz["fp32_bytes"].get<double>() / sz["packed_bytes"].get<double>(), sz["index_bpw"].get<double>(),
      sz["codebook_bpw"].get<double>(), sz["effective_bpw"].get<double>(),
      sz["file_bits_per_parameter"].get<double>());
  md << buf;
  std::snprintf(buf, sizeof buf, "- time: %.1f s calibration, %.1f s total; peak memory %.0f MB\n",
                r["timing"]["calibration_seconds"].get<double>(), r["timing"]["wall_seconds"].get<double>(),
                r["peak_memory_mb"].get<double>());
  md << buf;
  if (r.contains("accuracy")) {
    const auto& a = r["accuracy"];
    std::snprintf(buf, sizeof buf,
                  "\n| | top-1 | top-5 |\n|---|---|---|\n| full precision | %.2f | %.2f |\n| quantized | "
                  "%.2f | %.2f |\n"
                  "\ntop-1 agreement %.2f %%, mean KL %.5f, on %lld images of %s\n",
                  a["full_precision"]["top1"].get<double>(), a["full_precision"]["top5"].get<double>(),
                  a["quantized"]["top1"].get<double>(), a["quantized"]["top5"].get<double>(),
                  a["top1_agreement"].get<double>(), a["mean_kl"].get<double>(), a["images"].get<long long>(),
                  a["data"].get<std::string>().c_str());
    md << buf;
  }
  md << "\n| layer | shape | k | d | index bpw | codebook bpw | weight err | truncation |\n"
        "|---|---|---|---|---|---|---|---|\n";
  for (const auto& l : r["layers"]) {
    const double numel = l["numel"].get<double>();
    std::snprintf(buf, sizeof buf, "| %s | %s | %lld | %d | %.3f | %.3f | %.4f | %.3g |\n",
                  l["name"].get<std::string>().c_str(), l["shape_text"].get<std::string>().c_str(),
                  l["k"].get<long long>(), l["d"].get<int>(), l["index_bits"].get<double>() / numel,
                  l["codebook_bits"].get<double>() / numel, l["weight_error"].get<double>(),
                  l["truncation_error"].get<double>());
    md << buf;
  }
  md << "\n| block | loss before | loss after | seconds |\n|---|---|---|---|\n";
  for (const auto& b : r["blocks"]) {
    std::snprintf(buf, sizeof buf, "| %d | %.4g | %.4g | %.1f |\n", b["index"].get<int>(),
                  b["loss_init"].get<double>(), b["loss_final"].get<double>(), b["seconds"].get<double>());
    md << buf;
  }
  return md.str();
}

}  // namespace

// Everything after the packed file is written: report, evaluation (run_quantize removes the
// output if this throws).
int finish_quantize(const QuantizeOptions& o, const calib::CalibrationParams& p, model::VimModel& model,
                    const calib::CalibrationResult& result, const format::SizeBreakdown& sizes,
                    int64_t n_calib, const std::string& list_hash, int threads, const c10::Device& device,
                    std::chrono::steady_clock::time_point t_start);

int run_quantize(const QuantizeOptions& o) {
  const auto t_start = Clock::now();
  const int threads = configure_threads(o.threads);
  const c10::Device device = parse_device(o.device);
  const calib::CalibrationParams p = resolve_params(o);
  auto model = model::VimModel::load(o.model, device);
  const auto& meta = model.metadata();
  const auto layers = calib::select_layers(model, p);
  if (layers.empty())
    throw Error("no quantizable layer of " + o.model + " matches the --include / --exclude patterns");
  SizeSummary planned;
  for (const auto& l : layers) {
    planned.quantized_weights += l.numel;
    if (p.method == "rtn") {
      planned.index_bits += l.numel * p.bits;
      planned.codebook_bits += 16 * l.shape[0] * (int64_t{1} << p.bits);
    } else {
      const auto s = vq::vq_shape(p.bits, l.numel);
      planned.index_bits += s.index_bits();
      planned.codebook_bits += s.codebook_bits();
    }
  }
  spdlog::info(
      "{}: {} of {} quantizable layers, {} weights; {} at {} bits: {:.3f} index + {:.3f} codebook bpw",
      o.model, layers.size(), model.quantizable_layers().size(), planned.quantized_weights, p.method, p.bits,
      static_cast<double>(planned.index_bits) / planned.quantized_weights,
      static_cast<double>(planned.codebook_bits) / planned.quantized_weights);
  if (o.dry_run) {
    for (const auto& l : layers) {
      const auto s = vq::vq_shape(p.bits, l.numel);
      std::printf("%-36s %6lldx%-6lld k=%-4lld d=%d  %.3f+%.3f bpw\n", l.name.c_str(),
                  static_cast<long long>(l.shape[0]), static_cast<long long>(l.shape[1]),
                  static_cast<long long>(s.k), s.d, static_cast<double>(s.index_bits()) / l.numel,
                  static_cast<double>(s.codebook_bits()) / l.numel);
    }
    return 0;
  }
  check_output_writable(o.output);
  if (o.report) check_output_writable(*o.report);

  data::Dataset calib_ds = data::open_dataset(o.calib, std::nullopt);
  std::string list_hash;
  const at::Tensor images =
      load_calibration(calib_ds, o.calib_size, p.seed, meta, threads, o.calib, &list_hash).to(device);
  spdlog::info("calibration: {} images from {} (list hash {})", images.size(0), o.calib, list_hash);

  int blocks_with_layers = 0;
  for (int b = 0; b < meta.num_blocks; ++b) {
    blocks_with_layers += std::any_of(layers.begin(), layers.end(), [b](auto& l) { return l.block == b; });
  }
  const int64_t steps = calib::planned_steps(p, blocks_with_layers);
  std::unique_ptr<Progress> progress;
  if (steps > 0) progress = std::make_unique<Progress>("calibrate", steps, "step");
  calib::Callbacks cb;
  cb.log = [&](const std::string& line) { spdlog::info("{}", line); };
  cb.advance = [&](int64_t n) {
    if (progress) progress->advance(n);
  };
  const calib::CalibrationResult result = calib::quantize_model(model, images, p, cb);
  if (progress) progress->finish();

  format::PackedCheckpoint packed;
  packed.layers = result.layers;
  packed.architecture = format::architecture_without(model.module(), packed.layers);
  packed.provenance = {{"tool", "vimvq"},
                       {"tool_version", kVersion},
                       {"source_model", std::filesystem::path(o.model).filename().string()},
                       {"bits", p.bits},
                       {"method", p.method},
                       {"params", calib::to_json(p)},
                       {"seed", p.seed},
                       {"calibration", {{"images", images.size(0)}, {"list_hash_fnv1a64", list_hash}}}};
  // Timings stay in the report: the packed file is byte-identical for the same inputs and seed.
  const auto sizes = format::write_packed(o.output, packed);
  try {
    return finish_quantize(o, p, model, result, sizes, images.size(0), list_hash, threads, device, t_start);
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove(o.output, ec);  // a failed run leaves no output behind
    throw;
  }
}

int finish_quantize(const QuantizeOptions& o, const calib::CalibrationParams& p, model::VimModel& model,
                    const calib::CalibrationResult& result, const format::SizeBreakdown& sizes,
                    int64_t n_calib, const std::string& list_hash, int threads, const c10::Device& device,
                    std::chrono::steady_clock::time_point t_start) {
  const auto& meta = model.metadata();

  nlohmann::json r;
  r["tool"] = "vimvq";
  r["command"] = "quantize";
  r["model"] = o.model;
  r["output"] = o.output;
  spdlog::info("wrote {} ({:.3f} MB: codes {:.3f}, codebooks {:.3f}, architecture + fp parameters {:.3f})",
               o.output, sizes.file_bytes / 1e6, sizes.code_bytes / 1e6, sizes.codebook_bytes / 1e6,
               sizes.architecture_bytes / 1e6);
  r["calibration"] = {{"folder", o.calib}, {"images", n_calib}, {"list_hash_fnv1a64", list_hash}};
  r["params"] = calib::to_json(p);
  r["layers"] = nlohmann::json::array();
  SizeSummary done;
  for (const auto& l : result.layer_reports) {
    int64_t numel = 1;
    for (auto s : l.shape) numel *= s;
    done.quantized_weights += numel;
    done.index_bits += l.index_bits;
    done.codebook_bits += l.codebook_bits;
    r["layers"].push_back({{"name", l.name},
                           {"shape", l.shape},
                           {"shape_text", std::to_string(l.shape[0]) + "x" + std::to_string(l.shape[1])},
                           {"numel", numel},
                           {"k", l.k},
                           {"d", l.d},
                           {"groups", l.groups},
                           {"code_bits", l.code_bits},
                           {"index_bits", l.index_bits},
                           {"codebook_bits", l.codebook_bits},
                           {"weight_error", l.weight_error},
                           {"truncation_error", l.truncation_error}});
  }
  r["blocks"] = nlohmann::json::array();
  for (const auto& b : result.blocks) {
    nlohmann::json conf = nlohmann::json::array();
    for (const auto& c : b.confirmations) {
      conf.push_back({{"step", c.step},
                      {"fraction", c.fraction},
                      {"loss_before", c.loss_before},
                      {"loss_after", c.loss_after},
                      {"truncation_error", c.truncation_error}});
    }
    r["blocks"].push_back({{"index", b.index},
                           {"confirmed_fraction", b.confirmed_fraction},
                           {"loss_init", b.loss_init},
                           {"loss_final", b.loss_final},
                           {"seconds", b.seconds},
                           {"confirmations", conf}});
  }
  const int64_t n_params = model.num_parameters();
  r["size"] = {
      {"parameters", n_params},
      {"quantized_weights", done.quantized_weights},
      {"fp32_bytes", n_params * 4},
      {"packed_bytes", sizes.file_bytes},
      {"code_bytes", sizes.code_bytes},
      {"codebook_bytes", sizes.codebook_bytes},
      {"architecture_bytes", sizes.architecture_bytes},
      {"index_bpw", static_cast<double>(done.index_bits) / done.quantized_weights},
      {"codebook_bpw", static_cast<double>(done.codebook_bits) / done.quantized_weights},
      {"effective_bpw", static_cast<double>(done.index_bits + done.codebook_bits) / done.quantized_weights},
      {"file_bits_per_parameter", 8.0 * sizes.file_bytes / n_params}};

  if (o.eval_data) {
    auto quantized = model::VimModel::load(o.output, device);  // exactly what was written
    auto original = model::VimModel::load(o.model, device);
    data::Dataset ds = data::open_dataset(*o.eval_data, std::nullopt, meta.class_names);
    if (o.eval_limit > 0 && static_cast<size_t>(o.eval_limit) < ds.samples.size())
      ds.samples.resize(o.eval_limit);
    report::check_labels(ds, meta, *o.eval_data);
    report::EvalSettings es;
    es.batch_size = o.eval_batch_size;
    es.threads = threads;
    Progress bar("eval", static_cast<int64_t>(ds.samples.size()), "img");
    const auto er = report::evaluate(quantized, &original, ds, es, [&](int64_t n) { bar.advance(n); });
    bar.finish();
    r["accuracy"] = {
        {"data", *o.eval_data},
        {"images", er.metrics.images()},
        {"full_precision", {{"top1", er.reference_metrics->top1()}, {"top5", er.reference_metrics->top5()}}},
        {"quantized", {{"top1", er.metrics.top1()}, {"top5", er.metrics.top5()}}},
        {"top1_agreement", er.agreement.top1_agreement()},
        {"mean_kl", er.agreement.mean_kl()}};
  }
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  r["peak_memory_mb"] = usage.ru_maxrss / 1024.0;
  r["timing"] = {{"calibration_seconds", result.seconds},
                 {"wall_seconds", std::chrono::duration<double>(Clock::now() - t_start).count()}};
  const std::string md = markdown(r);
  std::printf("\n%s", md.c_str());
  if (o.report) {
    write_file_atomically(*o.report, r.dump(2) + "\n");
    std::filesystem::path md_path(*o.report);
    md_path.replace_extension(".md");
    write_file_atomically(md_path, md);
  }
  return 0;
}

}  // namespace vimvq::cli
