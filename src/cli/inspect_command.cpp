// vimvq inspect: metadata, quantizable layers with outlier statistics, and the packed size and
// bits per weight that 1, 2 and 3 bits would give (codebooks included, the rest in fp16). A packed
// checkpoint gets its own view (inspect_packed.cpp).
#include <torch/script.h>

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "src/cli/commands.h"
#include "src/cli/inspect_packed.h"
#include "src/cli/runtime.h"
#include "vimvq/format/load_model.h"
#include "vimvq/format/packed_checkpoint.h"
#include "vimvq/report/quantize_report.h"
#include "vimvq/util/error.h"
#include "vimvq/vq/size_plan.h"

namespace vimvq::cli {
namespace {

struct WeightStats {
  double max_over_std = 0, excess_kurtosis = 0, beyond_6_std = 0;
};

WeightStats weight_stats(const at::Tensor& w) {
  const at::Tensor x = w.detach().to(at::kCPU).to(at::kDouble).flatten();
  const at::Tensor centred = x - x.mean();
  const double var = centred.pow(2).mean().item<double>();
  const double sd = std::sqrt(var);
  WeightStats s;
  if (sd == 0) return s;
  s.max_over_std = x.abs().max().item<double>() / sd;
  s.excess_kurtosis = centred.pow(4).mean().item<double>() / (var * var) - 3.0;
  s.beyond_6_std = 100.0 * (centred.abs() > 6 * sd).sum().item<int64_t>() / static_cast<double>(x.numel());
  return s;
}

// The human-readable form of the JSON `inspect --json` prints.
void print_table(const std::string& path, const model::ModelMetadata& meta, const nlohmann::json& j) {
  std::printf("%s: %s (%s), %d blocks, %d classes, input %dx%dx%d (resize %d, crop %d), scan %s\n",
              path.c_str(), meta.config_name.c_str(), meta.architecture.c_str(), meta.num_blocks,
              meta.num_classes, meta.preprocess.channels, meta.image_size, meta.image_size,
              meta.preprocess.resize, meta.preprocess.crop, meta.scan.c_str());
  std::printf("parameters %lld (%.2f MB fp32), quantizable %lld (%.1f %%)\n\n",
              static_cast<long long>(j["parameters"].get<int64_t>()),
              j["parameters"].get<int64_t>() * 4 / 1e6,
              static_cast<long long>(j["quantizable_parameters"].get<int64_t>()),
              100.0 * j["quantizable_parameters"].get<double>() / j["parameters"].get<int64_t>());
  std::printf("%-36s %-10s %10s %10s %10s %10s\n", "layer", "shape", "params", "max/std", "ex.kurt",
              "%>6std");
  for (const auto& l : j["layers"]) {
    std::printf("%-36s %-10s %10lld %10.2f %10.2f %10.4f\n", l["name"].get<std::string>().c_str(),
                report::shape_text(l["shape"].get<std::vector<int64_t>>()).c_str(),
                l["parameters"].get<long long>(), l["max_abs_over_std"].get<double>(),
                l["excess_kurtosis"].get<double>(), l["percent_beyond_6_std"].get<double>());
  }
  std::printf("\n%-5s %12s %12s %12s %14s %12s   (rest in fp16)\n", "bits", "index bpw", "codebook bpw",
              "effective", "model size", "model bpw");
  for (const auto& p : j["packed"]) {
    std::printf("%-5d %12.3f %12.3f %12.3f %11.3f MB %12.3f\n", p["bits"].get<int>(),
                p["index_bits_per_weight"].get<double>(), p["codebook_bits_per_weight"].get<double>(),
                p["effective_bits_per_weight"].get<double>(), p["model_bytes"].get<int64_t>() / 1e6,
                p["model_bits_per_parameter"].get<double>());
  }
}

}  // namespace

int run_inspect(const InspectOptions& o) {
  configure_threads(o.threads);
  run_graphs_unoptimized();
  if (format::is_packed_file(o.model)) return inspect_packed(o);
  auto model = format::load_model(o.model);
  const auto& meta = model.metadata();
  const auto layers = model.quantizable_layers();
  std::map<std::string, at::Tensor> params;
  for (const auto& p : model.module().named_parameters(true)) params.emplace(p.name, p.value);

  nlohmann::json j;
  j["model"] = o.model;
  j["metadata"] = meta.raw;
  j["parameters"] = model.num_parameters();
  j["layers"] = nlohmann::json::array();
  int64_t quantizable = 0;
  for (const auto& l : layers) {
    const WeightStats s = weight_stats(params.at(l.name));
    quantizable += l.numel;
    j["layers"].push_back({{"name", l.name},
                           {"shape", l.shape},
                           {"parameters", l.numel},
                           {"max_abs_over_std", s.max_over_std},
                           {"excess_kurtosis", s.excess_kurtosis},
                           {"percent_beyond_6_std", s.beyond_6_std}});
  }
  const int64_t other = model.num_parameters() - quantizable;
  j["quantizable_parameters"] = quantizable;
  j["fp32_bytes"] = model.num_parameters() * 4;
  j["packed"] = nlohmann::json::array();
  for (int bits : {1, 2, 3}) {
    vq::SizeTotals t;
    for (const auto& l : layers) t.add(vq::plan_layer(vq::Method::kVimvq, bits, l.shape));
    const int64_t model_bytes = t.model_bytes(other, format::rest_dtype_bytes(format::RestDtype::kFloat16));
    j["packed"].push_back({{"bits", bits},
                           {"index_bits_per_weight", t.index_bpw()},
                           {"codebook_bits_per_weight", t.codebook_bpw()},
                           {"effective_bits_per_weight", t.effective_bpw()},
                           {"model_bytes", model_bytes},
                           {"model_bits_per_parameter", 8.0 * model_bytes / model.num_parameters()}});
  }
  if (o.json) {
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  print_table(o.model, meta, j);
  return 0;
}

}  // namespace vimvq::cli
