// The parameter table: each knob of CalibrationParams once, with its name, doc and range check.
// Setters, JSON in and out, validation and the --help-params listing are all read off it.
#include <cmath>
#include <functional>
#include <limits>
#include <sstream>

#include "vimvq/calib/params.h"
#include "vimvq/util/error.h"

namespace vimvq::calib {
namespace {

using json = nlohmann::json;
using P = CalibrationParams;

struct ParamSpec {
  std::string key, range, doc;
  std::function<json(const P&)> get;
  // Throws ValueError with the problem (the caller adds source and key).
  std::function<void(P&, const json&)> set;
};

struct ValueError {
  std::string problem;
};

template <typename T>
ParamSpec integer(const char* key, T P::*field, int64_t lo, int64_t hi, const char* doc) {
  const std::string range = std::to_string(lo) + ".." + std::to_string(hi);
  return {key, range, doc, [field](const P& p) { return json(p.*field); },
          [field, lo, hi, range](P& p, const json& v) {
            // nlohmann reads non-negative integers as unsigned: compare before any narrowing.
            bool ok = false;
            if (v.is_number_unsigned()) {
              ok = v.get<uint64_t>() <= static_cast<uint64_t>(hi) && v.get<int64_t>() >= lo;
            } else if (v.is_number_integer()) {
              ok = v.get<int64_t>() >= lo && v.get<int64_t>() <= hi;
            }
            if (!ok) throw ValueError{"must be an integer in " + range + " (got " + v.dump() + ")"};
            p.*field = static_cast<T>(v.get<int64_t>());
          }};
}

ParamSpec seed_spec() {
  return {"seed", "0..2^64-1", "seed of the calibration subset, k-means and batch order",
          [](const P& p) { return json(p.seed); },
          [](P& p, const json& v) {
            if (!v.is_number_unsigned())
              throw ValueError{"must be an integer in 0..18446744073709551615 (got " + v.dump() + ")"};
            p.seed = v.get<uint64_t>();
          }};
}

enum class Bounds { kClosed, kOpenLow, kOpenHigh };

// A finite real in [lo, hi], (lo, hi] or [lo, hi).
ParamSpec real(const char* key, double P::*field, double lo, double hi, Bounds bounds, const char* doc) {
  const bool lo_open = bounds == Bounds::kOpenLow, hi_open = bounds == Bounds::kOpenHigh;
  std::ostringstream r;
  r << (lo_open ? "(" : "[") << lo << ", " << hi << (hi_open ? ")" : "]");
  const std::string range = r.str();
  return {key, range, doc, [field](const P& p) { return json(p.*field); },
          [field, lo, hi, lo_open, hi_open, range](P& p, const json& v) {
            const double x = v.is_number() ? v.get<double>() : std::nan("");
            if (!std::isfinite(x) || x < lo || x > hi || (lo_open && x == lo) || (hi_open && x == hi))
              throw ValueError{"must be a number in " + range + " (got " + v.dump() + ")"};
            p.*field = x;
          }};
}

ParamSpec flag(const char* key, bool P::*field, const char* doc) {
  return {key, "true|false", doc, [field](const P& p) { return json(p.*field); },
          [field](P& p, const json& v) {
            if (!v.is_boolean()) throw ValueError{"must be true or false (got " + v.dump() + ")"};
            p.*field = v.get<bool>();
          }};
}

template <typename E>
ParamSpec choice(const char* key, E P::*field, std::vector<std::pair<E, std::string>> names,
                 const char* doc) {
  std::string range;
  for (const auto& [value, name] : names) range += (range.empty() ? "" : "|") + name;
  return {key, range, doc,
          [field, names](const P& p) {
            for (const auto& [value, name] : names) {
              if (p.*field == value) return json(name);
            }
            return json(nullptr);
          },
          [field, names, range](P& p, const json& v) {
            for (const auto& [value, name] : names) {
              if (v.is_string() && v.get<std::string>() == name) {
                p.*field = value;
                return;
              }
            }
            throw ValueError{"must be one of " + range + " (got " + v.dump() + ")"};
          }};
}

ParamSpec patterns(const char* key, std::vector<std::string> P::*field, const char* doc) {
  return {key, "list of strings", doc, [field](const P& p) { return json(p.*field); },
          [field](P& p, const json& v) {
            if (!v.is_array()) throw ValueError{"must be a list of strings (got " + v.dump() + ")"};
            std::vector<std::string> out;
            for (const auto& s : v) {
              if (!s.is_string()) throw ValueError{"must be a list of strings (got " + v.dump() + ")"};
              out.push_back(s.get<std::string>());
            }
            p.*field = out;
          }};
}

ParamSpec stage_fractions_spec() {
  return {"stage_fractions", "non-decreasing list in (0, 1] ending at 1",
          "confirmed share of each layer at the end of each stage (its length is the stage count)",
          [](const P& p) { return json(p.stage_fractions); },
          [](P& p, const json& v) {
            const ValueError bad{
                "must be a non-empty, non-decreasing list of numbers in (0, 1] ending at 1.0 (got " +
                v.dump() + ")"};
            if (!v.is_array() || v.empty() || v.size() > 64) throw bad;
            std::vector<double> out;
            for (const auto& x : v) {
              if (!x.is_number()) throw bad;
              const double f = x.get<double>();
              if (!(f > 0 && f <= 1) || (!out.empty() && f < out.back())) throw bad;
              out.push_back(f);
            }
            if (out.back() != 1.0) throw bad;
            p.stage_fractions = out;
          }};
}

// The method and the block-wise pass.
std::vector<ParamSpec> block_wise_specs() {
  using vq::ConfirmOrder;
  using vq::Method;
  return {
      integer("bits", &P::bits, 1, 4, "index bits per weight: (k, d) from docs/METHOD.md section 1"),
      choice("method", &P::method,
             {{Method::kVimvq, "vimvq"},
              {Method::kVq4dit, "vq4dit"},
              {Method::kKmeans, "kmeans"},
              {Method::kRtn, "rtn"}},
             "quantization method (docs/METHOD.md section 6)"),
      flag("hull_update", &P::hull_update, "vimvq: move each hull towards the codewords the loss prefers"),
      flag("incremental", &P::incremental, "vimvq: confirm codes stage by stage (false: all at the end)"),
      choice("importance", &P::importance, {{Importance::kDiag, "diag"}, {Importance::kNone, "none"}},
             "k-means weights: h_c = mean x_c^2 of each layer's inputs, or none"),
      integer("kmeans_iterations", &P::kmeans_iterations, 1, 100000, "Lloyd iterations at most"),
      integer(
          "kmeans_max_points_per_centroid", &P::kmeans_max_points_per_centroid, 0, 1000000000,
          "k-means trains on a seeded sample of k * this many sub-vectors when a layer has more (0: all)"),
      integer("iterations", &P::iterations, 1, 10000000, "optimisation steps per block"),
      integer("batch_size", &P::batch_size, 1, 65536, "calibration images per step"),
      choice("step_matmuls", &P::step_matmuls,
             {{MatmulPrecision::kFp32, "fp32"}, {MatmulPrecision::kBf16, "bf16"}},
             "precision of the block's matrix products in the steps, CPU only (bf16: oneDNN rounds the "
             "inputs to bf16 and sums in fp32; fast where the CPU has AMX); targets, passes and reported "
             "losses stay fp32"),
      integer("warmup_images", &P::warmup_images, 0, 1000000000,
              "images (spread evenly over the set) that the importances and the initial loss read before "
              "a block's first step (0: all)"),
      real("lr_logits", &P::lr_logits, 0, 10, Bounds::kClosed,
           "Adam learning rate of the convex-combination logits"),
      real("lr_codebook", &P::lr_codebook, 0, 10, Bounds::kClosed, "Adam learning rate of the codebooks"),
      integer("hull_size", &P::hull_size, 1, 256, "vimvq: candidate codewords per sub-vector (n)"),
      integer("hull_update_every", &P::hull_update_every, 1, 10000000,
              "steps between hull updates and confirm-above checks (T_h)"),
      stage_fractions_spec(),
      real("confirm_threshold", &P::confirm_threshold, 0, 1, Bounds::kOpenLow,
           "a free sub-vector whose max ratio exceeds this is confirmed at the next check"),
      choice("confirm_order", &P::confirm_order,
             {{ConfirmOrder::kLargestRatio, "ratio"}, {ConfirmOrder::kSmallestError, "error"}},
             "stage confirmation order: largest max-ratio or smallest truncation error first"),
      real("regularizer", &P::regularizer, 0, 1e6, Bounds::kClosed,
           "ratio regularizer weight, relative to the block's k-means loss; ramps up within each stage"),
      real("finetune_fraction", &P::finetune_fraction, 0, 1, Bounds::kOpenHigh,
           "share of the steps spent on the codebook-only fine-tune at the end"),
      real("early_stop_tolerance", &P::early_stop_tolerance, 0, 1, Bounds::kOpenHigh,
           "early stopping: a stage ends (at its last epoch) once its epoch loss has improved by less "
           "than this share for early_stop_patience epochs in a row (0: off)"),
      integer("early_stop_patience", &P::early_stop_patience, 1, 1000000,
              "early stopping: epochs in a row without improvement that end a stage"),
      real("vq4dit_harden_fraction", &P::vq4dit_harden_fraction, 0, 1, Bounds::kOpenLow,
           "vq4dit: a layer is hardened once this share of it is confirmed"),
      patterns("include", &P::include, "only layers matching these globs or substrings (empty: all)"),
      patterns("exclude", &P::exclude, "skip layers matching these globs or substrings"),
      seed_spec(),
  };
}

// `--target-bpw`'s width per layer (calib/allocation.h).
std::vector<ParamSpec> allocation_specs() {
  return {
      real("target_bpw", &P::target_bpw, 0, 16, Bounds::kClosed,
           "average bits per quantized weight, codebooks counted; each layer's width chosen by its "
           "Fisher-weighted error, the total within 1 % below (0: every layer at `bits`)"),
      integer("allocation_images", &P::allocation_images, 1, 1000000,
              "calibration images the target_bpw allocation takes each weight's Fisher on"),
      integer("allocation_labels", &P::allocation_labels, 1, 1000000,
              "the allocation's Fisher: each image's squared gradients summed over its this many most "
              "probable labels, weighted by their probabilities (one backward each; the exact Fisher "
              "when it covers every class)"),
  };
}

// The end-to-end stage after the block-wise pass (calib/end_to_end.h).
std::vector<ParamSpec> end_to_end_specs() {
  return {
      integer("e2e_steps", &P::e2e_steps, -1, 10000000,
              "end-to-end stage after the block-wise pass: Adam steps on every codebook (codes fixed) "
              "against the full-precision model's logits, KL loss (0: off; -1: 100 for vimvq, 0 for "
              "the baselines)"),
      real("e2e_lr", &P::e2e_lr, 0, 10, Bounds::kClosed,
           "end-to-end stage: Adam learning rate of the codebooks"),
      flag("e2e_by_blocks", &P::e2e_by_blocks,
           "end-to-end stage: back-propagate block by block, each block's forward run again (the graph "
           "of one block in memory, not the model's, for one more forward per step); false: one graph"),
      integer("e2e_extra_images", &P::e2e_extra_images, 0, 1000000000,
              "end-to-end stage: also train on this many more images of the calibration folder (the "
              "seeded shuffle's next ones; the agreement check leaves them out)"),
      flag("e2e_rest", &P::e2e_rest,
           "end-to-end stage: also tune the 1-D parameters (norm weights and biases, layer biases, D) "
           "of the blocks from the first quantized one on, at the same rate"),
  };
}

// Every knob, in `--help-params` order.
const std::vector<ParamSpec>& table() {
  static const std::vector<ParamSpec> specs = [] {
    std::vector<ParamSpec> all = block_wise_specs();
    for (auto part : {allocation_specs(), end_to_end_specs()})
      all.insert(all.end(), part.begin(), part.end());
    return all;
  }();
  return specs;
}

}  // namespace

int bits_of(const CalibrationParams& p, const std::string& layer) {
  const auto it = p.layer_bits.find(layer);
  return it == p.layer_bits.end() ? p.bits : it->second;
}

int64_t codewords_of(const CalibrationParams& p, const std::string& layer) {
  const auto it = p.layer_codewords.find(layer);
  return it == p.layer_codewords.end() ? 0 : it->second;
}

int e2e_steps_of(const CalibrationParams& p) {
  if (p.e2e_steps >= 0) return p.e2e_steps;
  return p.method == vq::Method::kVimvq ? kVimvqE2eSteps : 0;
}

namespace {

const ParamSpec* find_spec(const std::string& key) {
  for (const auto& s : table()) {
    if (s.key == key) return &s;
  }
  return nullptr;
}

}  // namespace

void set_param_json(CalibrationParams& p, const std::string& key, const json& value,
                    const std::string& source) {
  const ParamSpec* spec = find_spec(key);
  if (!spec) throw Error(source + ": unknown parameter '" + key + "'");
  try {
    spec->set(p, value);
  } catch (const ValueError& e) {
    throw Error(source + ": " + key + " " + e.problem);
  }
}

void apply_json(CalibrationParams& p, const json& config, const std::string& source) {
  if (!config.is_object()) throw Error(source + ": expected a JSON object of parameters");
  for (const auto& [key, value] : config.items()) {
    if (key.rfind("_", 0) == 0) continue;  // "_comment" and friends document a config
    set_param_json(p, key, value, source);
  }
}

void set_param(CalibrationParams& p, const std::string& key, const std::string& value) {
  set_param_text(p, key, value, "--set " + key + "=" + value);
}

void set_param_text(CalibrationParams& p, const std::string& key, const std::string& value,
                    const std::string& source) {
  json v;
  try {
    v = json::parse(value);  // numbers, booleans, lists
  } catch (const json::out_of_range&) {
    throw Error(source + ": " + key + " is a number out of range");
  } catch (const json::exception&) {
    v = value;  // a bare string
  }
  set_param_json(p, key, v, source);
}

json to_json(const CalibrationParams& p) {
  json j = json::object();
  for (const auto& s : table()) j[s.key] = s.get(p);
  return j;
}

void validate(const CalibrationParams& p) {
  CalibrationParams copy = p;
  for (const auto& s : table()) set_param_json(copy, s.key, s.get(p), "parameter");
}

std::string params_help() {
  const CalibrationParams defaults;
  std::ostringstream out;
  out << "Parameters of vimvq quantize (--config FILE.json keys, --set key=value):\n";
  for (const auto& s : table()) {
    out << "  " << s.key << " = " << s.get(defaults).dump() << "\n      " << s.doc << "; " << s.range << "\n";
  }
  return out.str();
}

}  // namespace vimvq::calib
