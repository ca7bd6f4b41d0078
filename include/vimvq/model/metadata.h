// The model contract's metadata (docs/MODEL_CONTRACT.md), parsed from its JSON.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "vimvq/data/preprocess.h"

namespace vimvq::model {

inline constexpr int kContractVersion = 1;

struct ModelMetadata {
  nlohmann::json raw;
  int contract_version = 0;
  std::string architecture;
  std::string config_name;
  data::PreprocessParams preprocess;
  int image_size = 0;
  std::string interpolation;
  int num_classes = 0;
  std::vector<std::string> class_names;  // empty where unknown
  int cls_token_position = 0;
  int num_blocks = 0;
  std::vector<std::string> quantizable_layers;  // relative to a block, e.g. "mixer.in_proj.weight"
  std::string scan;
};

// Throws vimvq::Error("<source>: metadata: <problem>") on a missing or ill-typed field.
ModelMetadata parse_metadata(const std::string& json_text, const std::string& source);

}  // namespace vimvq::model
