// The report of one `vimvq quantize` run as typed records, and its renderers: console rows (the
// log), JSON (--report) and Markdown (stdout and the .md beside the JSON). Each renderer reads
// the records; none reads another renderer's output.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "vimvq/calib/end_to_end.h"
#include "vimvq/calib/params.h"
#include "vimvq/calib/profile.h"
#include "vimvq/calib/records.h"
#include "vimvq/vq/size_plan.h"

namespace vimvq::report {

struct SizeRecord {
  int64_t parameters = 0;    // every parameter of the model
  vq::SizeTotals quantized;  // the quantized weights' index and codebook bits
  int64_t packed_bytes = 0, code_bytes = 0, codebook_bytes = 0, architecture_bytes = 0;
  std::string rest_dtype = "float16";  // how the unquantized parameters are stored
  // What the packed model holds once loaded to run compressed (vimvq eval's default).
  int64_t resident_codes = 0, resident_codebooks = 0, resident_rest = 0;
};

// The packed model against the original on `images` images of `data`.
struct AgreementCounts {
  std::string data;
  int64_t images = 0, agreeing = 0;  // agreeing: images whose top-1 classes agree
  double mean_kl = 0;                // KL(original || packed)
  double top1_agreement() const { return images ? 100.0 * agreeing / images : 0.0; }
};

// With --eval-data (labelled, so every image scores).
struct AccuracyRecord : AgreementCounts {
  int64_t top1_correct = 0;
  double fp_top1 = 0, fp_top5 = 0, top5 = 0;
  double top1() const { return images ? 100.0 * top1_correct / images : 0.0; }
};

// Without --eval-data: on images of the calibration folder, those the calibration left out when
// the folder has any, else the calibration images themselves (in-sample, so optimistic).
struct AgreementRecord : AgreementCounts {
  bool held_out = false;
  int64_t skipped = 0;
};

struct QuantizeReport {
  std::string model, output;
  std::string calibration_folder, list_hash;
  int64_t calibration_images = 0;
  calib::CalibrationParams params;
  std::vector<calib::LayerRecord> layers;
  std::vector<calib::BlockRecord> blocks;
  SizeRecord size;
  std::optional<AccuracyRecord> accuracy;
  std::optional<AgreementRecord> agreement;
  std::optional<calib::Profile> profile;            // with --profile
  std::optional<calib::EndToEndRecord> end_to_end;  // with e2e_steps > 0
  double calibration_seconds = 0, wall_seconds = 0, peak_memory_mb = 0;
};

nlohmann::json to_json(const QuantizeReport& report);
std::string to_markdown(const QuantizeReport& report);
nlohmann::json profile_json(const calib::Profile& profile);
std::string profile_markdown(const calib::Profile& profile);

// "[block  2/8] layers.1.mixer.in_proj.weight  384x96 k=256 d=4 2.000+0.444 bpw", then weight
// and truncation errors once the layer is calibrated: a dry run prints the same rows, shorter.
std::string layer_row(const calib::LayerRecord& layer, int num_blocks);
std::string block_row(const calib::BlockRecord& block, int num_blocks, vq::Method method);
// One line: layers, weights, index + codebook = effective bits per weight, model size.
// A loaded model's resident bytes as every report gives them: codes, codebooks, rest, total.
nlohmann::json resident_json(int64_t codes, int64_t codebooks, int64_t rest);
// rest_bytes: bytes per unquantized parameter as stored (2 for fp16).
std::string size_footer(const vq::SizeTotals& totals, size_t layers, int64_t parameters, int rest_bytes);

std::string shape_text(const std::vector<int64_t>& shape);

}  // namespace vimvq::report
