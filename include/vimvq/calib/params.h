// Every knob of `vimvq quantize`. Defaults are the initialisers below; each knob's name, one-line
// doc and range check live once, in the parameter table (src/calib/param_table.cpp), from which
// config files, `--set key=value`, validation, the JSON in reports and `--help-params` all come.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "vimvq/vq/convex_quantizer.h"
#include "vimvq/vq/method.h"

namespace vimvq::calib {

enum class Importance { kDiag, kNone };
// The precision of the quantizable layers' matrix products in a calibration step.
enum class MatmulPrecision { kFp32, kBf16 };

struct CalibrationParams {
  int bits = 2;
  vq::Method method = vq::Method::kVimvq;
  bool hull_update = true;
  bool incremental = true;
  Importance importance = Importance::kDiag;
  int kmeans_iterations = 100;
  int64_t kmeans_max_points_per_centroid = 256;
  int iterations = 400;
  int batch_size = 32;
  MatmulPrecision step_matmuls = MatmulPrecision::kFp32;
  int64_t warmup_images = 0;  // images the importances and the initial loss read (0: all)
  double lr_logits = 5e-2;
  double lr_codebook = 1e-4;
  int hull_size = 4;
  int hull_update_every = 25;
  std::vector<double> stage_fractions = {0.5, 0.75, 0.9, 1.0};
  double confirm_threshold = 0.99;
  vq::ConfirmOrder confirm_order = vq::ConfirmOrder::kLargestRatio;
  double regularizer = 0.1;
  double finetune_fraction = 0.1;
  double early_stop_tolerance = 0;  // 0: every block runs all its steps
  int early_stop_patience = 2;
  double vq4dit_harden_fraction = 0.99;
  std::vector<std::string> include;
  std::vector<std::string> exclude;
  uint64_t seed = 1234;
  double target_bpw = 0;           // 0: every layer at `bits`; else a width per layer (calib/allocation.h)
  int64_t allocation_images = 32;  // calibration images the allocation takes the Fisher on
  int64_t allocation_labels = 10;  // each image's most probable labels the Fisher's expectation covers
  int e2e_steps = -1;  // end-to-end stage after the block-wise pass (calib/end_to_end.h); -1: e2e_steps_of
  double e2e_lr = 1e-4;
  bool e2e_by_blocks = true;     // back-propagate block by block (calib/end_to_end.h), else one graph
  int64_t e2e_extra_images = 0;  // the stage also trains on this many more folder images (the CLI loads them)
  bool e2e_rest = false;         // the stage also tunes the blocks' 1-D parameters (norms, biases, D)
  // Not knobs: the allocation's width and codebook cap per layer, set before the layers are planned.
  std::map<std::string, int> layer_bits;
  std::map<std::string, int64_t> layer_codewords;  // only the capped layers
};

// The width of one layer: the allocation's, else `bits`.
int bits_of(const CalibrationParams& p, const std::string& layer);
// The layer's codebook cap (vq::vq_shape's max_codewords): the allocation's, else 0 (none).
int64_t codewords_of(const CalibrationParams& p, const std::string& layer);
// The end-to-end stage's steps: e2e_steps, or for -1 (the default) kVimvqE2eSteps for vimvq and
// 0 for the other methods, which are the baselines as published.
constexpr int kVimvqE2eSteps = 100;
int e2e_steps_of(const CalibrationParams& p);

// Sets one knob from a JSON value; throws vimvq::Error "<source>: <key> ..." for an unknown key, a
// value of the wrong type or one out of range (nothing is wrapped or truncated).
void set_param_json(CalibrationParams& p, const std::string& key, const nlohmann::json& value,
                    const std::string& source);
// `--set key=value`: the value is read as JSON (numbers, booleans, lists) or else as a string.
void set_param(CalibrationParams& p, const std::string& key, const std::string& value);
// The same for a flag's text: `source` names it in errors ("--seed -1").
void set_param_text(CalibrationParams& p, const std::string& key, const std::string& value,
                    const std::string& source);
// A config object; keys starting with '_' are comments.
void apply_json(CalibrationParams& p, const nlohmann::json& config, const std::string& source);
nlohmann::json to_json(const CalibrationParams& p);
// Every knob's range check, on the values as they are now.
void validate(const CalibrationParams& p);
// One line per knob: name, default, range, doc (`vimvq quantize --help-params`).
std::string params_help();

}  // namespace vimvq::calib
