#include "vimvq/calib/params.h"

#include <functional>
#include <map>

#include "vimvq/util/error.h"

namespace vimvq::calib {
namespace {

using Setter = std::function<void(CalibrationParams&, const nlohmann::json&)>;

template <typename T>
Setter field(T CalibrationParams::*member) {
  return [member](CalibrationParams& p, const nlohmann::json& v) { p.*member = v.get<T>(); };
}

const std::map<std::string, Setter>& setters() {
  static const std::map<std::string, Setter> table = {
      {"bits", field(&CalibrationParams::bits)},
      {"method", field(&CalibrationParams::method)},
      {"hull_update", field(&CalibrationParams::hull_update)},
      {"incremental", field(&CalibrationParams::incremental)},
      {"importance", field(&CalibrationParams::importance)},
      {"kmeans_iterations", field(&CalibrationParams::kmeans_iterations)},
      {"iterations", field(&CalibrationParams::iterations)},
      {"batch_size", field(&CalibrationParams::batch_size)},
      {"lr_logits", field(&CalibrationParams::lr_logits)},
      {"lr_codebook", field(&CalibrationParams::lr_codebook)},
      {"hull_size", field(&CalibrationParams::hull_size)},
      {"hull_update_every", field(&CalibrationParams::hull_update_every)},
      {"stage_fractions", field(&CalibrationParams::stage_fractions)},
      {"confirm_threshold", field(&CalibrationParams::confirm_threshold)},
      {"confirm_order", field(&CalibrationParams::confirm_order)},
      {"regularizer", field(&CalibrationParams::regularizer)},
      {"finetune_fraction", field(&CalibrationParams::finetune_fraction)},
      {"vq4dit_harden_fraction", field(&CalibrationParams::vq4dit_harden_fraction)},
      {"include", field(&CalibrationParams::include)},
      {"exclude", field(&CalibrationParams::exclude)},
      {"seed", field(&CalibrationParams::seed)},
  };
  return table;
}

}  // namespace

void apply_json(CalibrationParams& p, const nlohmann::json& config, const std::string& source) {
  if (!config.is_object()) throw Error(source + ": expected a JSON object of parameters");
  for (const auto& [key, value] : config.items()) {
    if (key.rfind("_", 0) == 0) continue;  // "_comment" and friends document a config
    auto it = setters().find(key);
    if (it == setters().end()) throw Error(source + ": unknown parameter '" + key + "'");
    try {
      it->second(p, value);
    } catch (const nlohmann::json::exception&) {
      throw Error(source + ": parameter '" + key + "' has the wrong type (" + value.dump() + ")");
    }
  }
}

void set_param(CalibrationParams& p, const std::string& key, const std::string& value) {
  if (setters().find(key) == setters().end()) throw Error("--set " + key + ": unknown parameter");
  nlohmann::json v;
  try {
    v = nlohmann::json::parse(value);  // numbers, booleans, lists
  } catch (const nlohmann::json::exception&) {
    v = value;  // a bare string
  }
  apply_json(p, nlohmann::json{{key, v}}, "--set " + key + "=" + value);
}

nlohmann::json to_json(const CalibrationParams& p) {
  return {{"bits", p.bits},
          {"method", p.method},
          {"hull_update", p.hull_update},
          {"incremental", p.incremental},
          {"importance", p.importance},
          {"kmeans_iterations", p.kmeans_iterations},
          {"iterations", p.iterations},
          {"batch_size", p.batch_size},
          {"lr_logits", p.lr_logits},
          {"lr_codebook", p.lr_codebook},
          {"hull_size", p.hull_size},
          {"hull_update_every", p.hull_update_every},
          {"stage_fractions", p.stage_fractions},
          {"confirm_threshold", p.confirm_threshold},
          {"confirm_order", p.confirm_order},
          {"regularizer", p.regularizer},
          {"finetune_fraction", p.finetune_fraction},
          {"vq4dit_harden_fraction", p.vq4dit_harden_fraction},
          {"include", p.include},
          {"exclude", p.exclude},
          {"seed", p.seed}};
}

void validate(const CalibrationParams& p) {
  if (p.bits < 1 || p.bits > 4)
    throw Error("--bits " + std::to_string(p.bits) + ": supported are 1, 2, 3 and 4");
  if (p.method != "vimvq" && p.method != "vq4dit" && p.method != "kmeans" && p.method != "rtn") {
    throw Error("--method '" + p.method + "': use vimvq, vq4dit, kmeans or rtn");
  }
  if (p.importance != "diag" && p.importance != "none")
    throw Error("importance '" + p.importance + "': use diag or none");
  if (p.confirm_order != "ratio" && p.confirm_order != "error")
    throw Error("confirm_order: use ratio or error");
  if (p.iterations < 1 || p.batch_size < 1 || p.hull_size < 1 || p.hull_update_every < 1 ||
      p.kmeans_iterations < 1) {
    throw Error(
        "iterations, batch_size, hull_size, hull_update_every and kmeans_iterations must be positive");
  }
  if (p.stage_fractions.empty() || p.stage_fractions.back() != 1.0)
    throw Error("stage_fractions must end at 1.0");
  for (size_t i = 1; i < p.stage_fractions.size(); ++i) {
    if (p.stage_fractions[i] < p.stage_fractions[i - 1]) throw Error("stage_fractions must not decrease");
  }
  if (p.finetune_fraction < 0 || p.finetune_fraction >= 1) throw Error("finetune_fraction must be in [0, 1)");
}

}  // namespace vimvq::calib
