// The calibration records as JSON and back, exactly (doubles round-trip): the resume state keeps
// the finished blocks' records so that a resumed run reports every block.
#pragma once

#include <nlohmann/json.hpp>

#include "vimvq/calib/records.h"

namespace vimvq::calib {

nlohmann::json record_json(const LayerRecord& layer);
nlohmann::json record_json(const BlockRecord& block);
// Throw nlohmann::json::exception on a missing or ill-typed field.
LayerRecord layer_record_from_json(const nlohmann::json& j);
BlockRecord block_record_from_json(const nlohmann::json& j);

}  // namespace vimvq::calib
