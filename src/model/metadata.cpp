#include "vimvq/model/metadata.h"

#include <cmath>
#include <utility>

#include "vimvq/util/bounded_json.h"
#include "vimvq/util/error.h"

namespace vimvq::model {
namespace {

// Values a well-typed metadata can still get wrong; every one would break preprocessing or the
// class-indexed reports later, far from the file.
void check_values(const ModelMetadata& m, const std::string& where) {
  if (m.preprocess.channels != 1 && m.preprocess.channels != 3)
    throw Error(where + "input channels must be 1 or 3");
  if (static_cast<int>(m.preprocess.mean.size()) != m.preprocess.channels ||
      static_cast<int>(m.preprocess.std.size()) != m.preprocess.channels) {
    throw Error(where + "mean/std need one value per input channel");
  }
  for (int ch = 0; ch < m.preprocess.channels; ++ch) {
    if (!std::isfinite(m.preprocess.mean[ch]))
      throw Error(where + "input.mean[" + std::to_string(ch) + "] is not a finite number");
    if (!std::isfinite(m.preprocess.std[ch]) || !(m.preprocess.std[ch] > 1e-6f))
      throw Error(where + "input.std[" + std::to_string(ch) +
                  "] must be a positive number (it divides the pixels)");
  }
  constexpr int kMaxSide = 8192;
  for (const auto& [name, v] : {std::pair<const char*, int>{"input.resize", m.preprocess.resize},
                                {"input.crop", m.preprocess.crop},
                                {"input.image_size", m.image_size}}) {
    if (v < 1 || v > kMaxSide)
      throw Error(where + name + " is " + std::to_string(v) + " (expected 1 to " + std::to_string(kMaxSide) +
                  ")");
  }
  if (m.preprocess.crop > m.preprocess.resize) throw Error(where + "input.crop is larger than input.resize");
  if (m.interpolation != "bicubic")
    throw Error(where + "interpolation '" + m.interpolation + "' is not supported");
  if (m.preprocess.crop != m.image_size) throw Error(where + "crop size differs from the model's image size");
  if (m.num_classes < 1 || m.num_blocks < 1 || m.num_classes > 1000000 || m.num_blocks > 10000)
    throw Error(where + "num_classes and num_blocks must be positive (and at most 10^6 and 10^4)");
  if (!m.class_names.empty() && static_cast<int>(m.class_names.size()) != m.num_classes) {
    throw Error(where + "class_names has " + std::to_string(m.class_names.size()) + " entries for " +
                std::to_string(m.num_classes) + " classes");
  }
}

}  // namespace

ModelMetadata parse_metadata(const std::string& json_text, const std::string& source) {
  ModelMetadata m;
  const std::string where = source + ": metadata: ";
  try {
    auto parsed = parse_json_within_depth(json_text);
    if (!parsed) throw Error(where + "nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    m.raw = std::move(*parsed);
  } catch (const nlohmann::json::exception& e) {
    throw Error(where + "not valid JSON (" + e.what() + ")");
  }
  try {
    const auto& j = m.raw;
    m.contract_version = j.at("contract_version").get<int>();
    if (m.contract_version != kContractVersion) {
      throw Error(where + "contract version " + std::to_string(m.contract_version) + " (this vimvq reads " +
                  std::to_string(kContractVersion) + ")");
    }
    m.architecture = j.at("architecture").get<std::string>();
    m.config_name = j.value("config_name", "");
    const auto& in = j.at("input");
    m.preprocess.channels = in.at("channels").get<int>();
    m.preprocess.resize = in.at("resize").get<int>();
    m.preprocess.crop = in.at("crop").get<int>();
    m.preprocess.mean = in.at("mean").get<std::vector<float>>();
    m.preprocess.std = in.at("std").get<std::vector<float>>();
    m.image_size = in.at("image_size").get<int>();
    m.interpolation = in.at("interpolation").get<std::string>();
    m.num_classes = j.at("num_classes").get<int>();
    if (j.contains("class_names") && !j["class_names"].is_null())
      m.class_names = j["class_names"].get<std::vector<std::string>>();
    m.cls_token_position = j.at("cls_token_position").get<int>();
    m.num_blocks = j.at("num_blocks").get<int>();
    m.quantizable_layers = j.at("quantizable_layers").get<std::vector<std::string>>();
    m.scan = j.value("scan", "torch");
  } catch (const nlohmann::json::exception& e) {
    throw Error(where + e.what());
  }
  check_values(m, where);
  return m;
}

}  // namespace vimvq::model
