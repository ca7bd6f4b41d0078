// Every knob of `vimvq quantize`, with METHOD.md's defaults. Config files (configs/*.json) and
// `--set key=value` map onto these fields by name.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace vimvq::calib {

struct CalibrationParams {
  int bits = 2;                     // 1, 2, 3 (or 4): METHOD.md section 1's (k, d) table
  std::string method = "vimvq";     // vimvq | vq4dit | kmeans | rtn
  bool hull_update = true;          // section 4 hull update (vimvq)
  bool incremental = true;          // section 5 staged confirmation (vimvq); false: harden at the end
  std::string importance = "diag";  // diag: h_c = mean x_c^2 weights the k-means; none: unweighted
  int kmeans_iterations = 100;
  int iterations = 400;  // optimisation steps per block
  int batch_size = 32;   // calibration images per step
  double lr_logits = 5e-2;
  double lr_codebook = 1e-4;
  int hull_size = 4;           // n
  int hull_update_every = 25;  // T_h
  std::vector<double> stage_fractions = {0.5, 0.75, 0.9, 1.0};
  double confirm_threshold = 0.99;      // a sub-vector above this max ratio is confirmed at once
  std::string confirm_order = "ratio";  // ratio (largest max-ratio first) | error (smallest truncation first)
  // lambda of the ratio regularizer, relative to the block's initial (k-means) loss so that one
  // value suits blocks and models of any output scale; ramped from 0 within each stage.
  double regularizer = 0.1;
  double finetune_fraction = 0.1;  // codebook-only fine-tune after the last stage
  double vq4dit_harden_fraction = 0.99;
  std::vector<std::string> include;  // glob patterns on full parameter names; empty: all
  std::vector<std::string> exclude;
  uint64_t seed = 1234;
};

// Throws vimvq::Error naming the key for an unknown key or a value of the wrong type.
void set_param(CalibrationParams& p, const std::string& key, const std::string& value);
void apply_json(CalibrationParams& p, const nlohmann::json& config, const std::string& source);
nlohmann::json to_json(const CalibrationParams& p);
void validate(const CalibrationParams& p);

}  // namespace vimvq::calib
