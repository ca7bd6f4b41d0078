#include "src/cli/inspect_packed.h"

#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "vimvq/format/packed_checkpoint.h"
#include "vimvq/model/vim_model.h"
#include "vimvq/report/quantize_report.h"
#include "vimvq/util/error.h"

namespace vimvq::cli {
namespace {

nlohmann::json packed_json(const std::string& path, const format::PackedCheckpoint& c, model::VimModel& m) {
  vq::SizeTotals totals;
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& l : c.layers) {
    const vq::LayerPlan plan = l.plan();
    totals.add(plan);
    layers.push_back(
        {{"name", l.name},
         {"shape", l.shape},
         {"method", vq::method_name(l.method)},
         {"k", l.k},
         {"d", l.d},
         {"groups", l.groups},
         {"effective_bpw", static_cast<double>(plan.index_bits() + plan.codebook_bits()) / plan.numel}});
  }
  const auto resident = m.resident_bytes();
  // A layer that runs compressed keeps an empty placeholder: its weights count from the table.
  int64_t parameters = m.num_parameters();
  std::map<std::string, int64_t> held;
  for (const auto& p : m.module().named_parameters(true)) held.emplace(p.name, p.value.numel());
  for (const auto& l : c.layers)
    if (held[l.name] == 0) parameters += l.plan().numel;
  const auto& s = c.stored;
  return {{"model", path},
          {"format", {{"major", c.major}, {"minor", c.minor}}},
          {"metadata", m.metadata().raw},
          {"provenance", c.provenance},
          {"rest_dtype", format::rest_dtype_name(c.rest)},
          {"parameters", parameters},
          {"quantized_weights", totals.weights},
          {"fp32_bytes", parameters * 4},
          {"file_bytes", s.file_bytes},
          {"stored_bytes",
           {{"metadata", s.metadata_bytes},
            {"architecture", s.architecture_bytes},
            {"codebooks", s.codebook_bytes},
            {"codes", s.code_bytes}}},
          {"index_bpw", totals.index_bpw()},
          {"codebook_bpw", totals.codebook_bpw()},
          {"effective_bpw", totals.effective_bpw()},
          {"file_bits_per_parameter", 8.0 * s.file_bytes / parameters},
          {"resident_bytes", report::resident_json(resident.codes, resident.codebooks, resident.rest)},
          {"layers", layers}};
}

void print_packed(const nlohmann::json& j, const model::ModelMetadata& meta) {
  const auto& p = j["provenance"];
  const auto& st = j["stored_bytes"];
  const auto& r = j["resident_bytes"];
  const double fp32 = j["fp32_bytes"].get<double>();
  std::printf("%s: packed format %d.%d, %s (%s), %d blocks, %d classes; %s at %s bits, seed %s\n",
              j["model"].get<std::string>().c_str(), j["format"]["major"].get<int>(),
              j["format"]["minor"].get<int>(), meta.config_name.c_str(), meta.architecture.c_str(),
              meta.num_blocks, meta.num_classes, p.value("method", std::string("?")).c_str(),
              p.contains("bits") ? p["bits"].dump().c_str() : "?",
              p.contains("seed") ? p["seed"].dump().c_str() : "?");
  std::printf("file %.3f MB: metadata %.3f, architecture + %s rest %.3f, codebooks %.3f, codes %.3f\n",
              j["file_bytes"].get<double>() / 1e6, st["metadata"].get<double>() / 1e6,
              j["rest_dtype"].get<std::string>().c_str(), st["architecture"].get<double>() / 1e6,
              st["codebooks"].get<double>() / 1e6, st["codes"].get<double>() / 1e6);
  std::printf(
      "%lld parameters, %lld quantized: %.3f index + %.3f codebook = %.3f bits per weight; "
      "whole file %.3f bits per parameter\n",
      j["parameters"].get<long long>(), j["quantized_weights"].get<long long>(), j["index_bpw"].get<double>(),
      j["codebook_bpw"].get<double>(), j["effective_bpw"].get<double>(),
      j["file_bits_per_parameter"].get<double>());
  std::printf(
      "loaded compressed: %.3f MB resident (codes %.3f, codebooks %.3f, rest %.3f in fp32), "
      "%.3fx the fp32 model's %.3f MB\n\n",
      r["total"].get<double>() / 1e6, r["codes"].get<double>() / 1e6, r["codebooks"].get<double>() / 1e6,
      r["rest"].get<double>() / 1e6, r["total"].get<double>() / fp32, fp32 / 1e6);
  std::printf("%-36s %-10s %-7s %5s %3s %7s %9s\n", "layer", "shape", "method", "k", "d", "groups", "bpw");
  for (const auto& l : j["layers"]) {
    std::printf("%-36s %-10s %-7s %5lld %3d %7lld %9.3f\n", l["name"].get<std::string>().c_str(),
                report::shape_text(l["shape"].get<std::vector<int64_t>>()).c_str(),
                l["method"].get<std::string>().c_str(), l["k"].get<long long>(), l["d"].get<int>(),
                l["groups"].get<long long>(), l["effective_bpw"].get<double>());
  }
}

}  // namespace

int inspect_packed(const InspectOptions& o) {
  const c10::Device cpu("cpu");
  format::PackedCheckpoint c;
  torch::jit::Module module;
  try {
    c = format::read_packed(o.model);
    module = format::compressed(c, cpu, nullptr);
  } catch (const Error& e) {
    const std::string what = e.what();
    throw Error(what.rfind(o.model, 0) == 0 ? what : o.model + ": " + what);
  }
  auto model = model::VimModel::from_module(o.model, std::move(module), cpu);
  const nlohmann::json j = packed_json(o.model, c, model);
  if (o.json)
    std::printf("%s\n", j.dump(2).c_str());
  else
    print_packed(j, model.metadata());
  return 0;
}

}  // namespace vimvq::cli
