#include "vimvq/calib/records_json.h"

namespace vimvq::calib {

using json = nlohmann::json;

json record_json(const LayerRecord& l) {
  return {{"name", l.name},
          {"block", l.block},
          {"shape", l.shape},
          {"bits", l.bits},
          {"plan",
           {{"numel", l.plan.numel},
            {"groups", l.plan.groups},
            {"k", l.plan.k},
            {"d", l.plan.d},
            {"code_bits", l.plan.code_bits}}},
          {"calibrated", l.calibrated},
          {"weight_error", l.weight_error},
          {"truncation_error", l.truncation_error}};
}

json record_json(const BlockRecord& b) {
  json confirmations = json::array();
  for (const auto& c : b.confirmations) {
    confirmations.push_back({{"step", c.step},
                             {"fraction", c.fraction},
                             {"loss_before", c.loss_before},
                             {"loss_after", c.loss_after},
                             {"truncation_error", c.truncation_error}});
  }
  return {{"index", b.index},
          {"loss_init", b.loss_init},
          {"loss_final", b.loss_final},
          {"confirmed_fraction", b.confirmed_fraction},
          {"seconds", b.seconds},
          {"steps", b.steps},
          {"confirmations", confirmations},
          {"epoch_losses", b.epoch_losses}};
}

LayerRecord layer_record_from_json(const json& j) {
  LayerRecord l;
  l.name = j.at("name").get<std::string>();
  l.block = j.at("block").get<int>();
  l.shape = j.at("shape").get<std::vector<int64_t>>();
  l.bits = j.value("bits", 0);
  const json& plan = j.at("plan");
  l.plan.numel = plan.at("numel").get<int64_t>();
  l.plan.groups = plan.at("groups").get<int64_t>();
  l.plan.k = plan.at("k").get<int64_t>();
  l.plan.d = plan.at("d").get<int>();
  l.plan.code_bits = plan.at("code_bits").get<int>();
  l.calibrated = j.at("calibrated").get<bool>();
  l.weight_error = j.at("weight_error").get<double>();
  l.truncation_error = j.at("truncation_error").get<double>();
  return l;
}

BlockRecord block_record_from_json(const json& j) {
  BlockRecord b;
  b.index = j.at("index").get<int>();
  b.loss_init = j.at("loss_init").get<double>();
  b.loss_final = j.at("loss_final").get<double>();
  b.confirmed_fraction = j.at("confirmed_fraction").get<double>();
  b.seconds = j.at("seconds").get<double>();
  for (const auto& c : j.at("confirmations")) {
    b.confirmations.push_back({c.at("step").get<int>(), c.at("fraction").get<double>(),
                               c.at("loss_before").get<double>(), c.at("loss_after").get<double>(),
                               c.at("truncation_error").get<double>()});
  }
  // Absent from the resume files of earlier versions.
  if (j.contains("steps")) b.steps = j.at("steps").get<int>();
  if (j.contains("epoch_losses")) b.epoch_losses = j.at("epoch_losses").get<std::vector<double>>();
  return b;
}

}  // namespace vimvq::calib
