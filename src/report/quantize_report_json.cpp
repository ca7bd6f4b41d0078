#include "vimvq/calib/records_json.h"
#include "vimvq/report/evaluate.h"
#include "vimvq/report/quantize_report.h"

namespace vimvq::report {
namespace {

using json = nlohmann::json;

json layer_json(const calib::LayerRecord& l) {
  return {{"name", l.name},
          {"shape", l.shape},
          {"shape_text", shape_text(l.shape)},
          {"bits", l.bits},
          {"numel", l.plan.numel},
          {"k", l.plan.k},
          {"d", l.plan.d},
          {"groups", l.plan.groups},
          {"code_bits", l.plan.code_bits},
          {"index_bits", l.plan.index_bits()},
          {"codebook_bits", l.plan.codebook_bits()},
          {"weight_error", l.weight_error},
          {"truncation_error", l.truncation_error}};
}

}  // namespace

json resident_json(int64_t codes, int64_t codebooks, int64_t rest) {
  return {{"codes", codes}, {"codebooks", codebooks}, {"rest", rest}, {"total", codes + codebooks + rest}};
}

namespace {

json size_json(const SizeRecord& s) {
  const auto& q = s.quantized;
  return {{"parameters", s.parameters},
          {"quantized_weights", q.weights},
          {"fp32_bytes", s.parameters * 4},
          {"packed_bytes", s.packed_bytes},
          {"code_bytes", s.code_bytes},
          {"codebook_bytes", s.codebook_bytes},
          {"architecture_bytes", s.architecture_bytes},
          {"rest_dtype", s.rest_dtype},
          {"resident_bytes", resident_json(s.resident_codes, s.resident_codebooks, s.resident_rest)},
          {"index_bpw", q.index_bpw()},
          {"codebook_bpw", q.codebook_bpw()},
          {"effective_bpw", q.effective_bpw()},
          {"file_bits_per_parameter", 8.0 * s.packed_bytes / s.parameters}};
}

json accuracy_json(const AccuracyRecord& a) {
  return {{"data", a.data},
          {"images", a.images},
          {"full_precision", {{"top1", a.fp_top1}, {"top5", a.fp_top5}}},
          {"quantized",
           {{"top1", a.top1()},
            {"top1_interval95", interval95_json(a.top1_correct, a.images)},
            {"top5", a.top5}}},
          {"top1_agreement", a.top1_agreement()},
          {"top1_agreement_interval95", interval95_json(a.agreeing, a.images)},
          {"mean_kl", a.mean_kl}};
}

json agreement_json(const AgreementRecord& a) {
  return {{"data", a.data},
          {"held_out", a.held_out},
          {"images", a.images},
          {"skipped", a.skipped},
          {"top1_agreeing", a.agreeing},
          {"top1_agreement", a.top1_agreement()},
          {"top1_agreement_interval95", interval95_json(a.agreeing, a.images)},
          {"mean_kl", a.mean_kl}};
}

}  // namespace

json to_json(const QuantizeReport& r) {
  json j;
  j["tool"] = "vimvq";
  j["command"] = "quantize";
  j["model"] = r.model;
  j["output"] = r.output;
  j["calibration"] = {
      {"folder", r.calibration_folder}, {"images", r.calibration_images}, {"list_hash_fnv1a64", r.list_hash}};
  j["params"] = calib::to_json(r.params);
  j["layers"] = json::array();
  for (const auto& l : r.layers) j["layers"].push_back(layer_json(l));
  j["blocks"] = json::array();
  for (const auto& b : r.blocks) j["blocks"].push_back(calib::record_json(b));
  j["size"] = size_json(r.size);
  if (r.accuracy) j["accuracy"] = accuracy_json(*r.accuracy);
  if (r.agreement) j["agreement"] = agreement_json(*r.agreement);
  if (r.profile) j["profile"] = profile_json(*r.profile);
  if (r.end_to_end)
    j["end_to_end"] = {{"steps", r.end_to_end->steps},         {"images", r.end_to_end->images},
                       {"kl_before", r.end_to_end->kl_before}, {"kl_after", r.end_to_end->kl_after},
                       {"seconds", r.end_to_end->seconds},     {"rest_values", r.end_to_end->rest_values}};
  j["peak_memory_mb"] = r.peak_memory_mb;
  j["timing"] = {{"calibration_seconds", r.calibration_seconds}, {"wall_seconds", r.wall_seconds}};
  return j;
}

}  // namespace vimvq::report
