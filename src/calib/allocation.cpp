#include "vimvq/calib/allocation.h"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>
#include <set>
#include <utility>

#include "vimvq/calib/fisher.h"
#include "vimvq/util/error.h"
#include "vimvq/util/strprintf.h"
#include "vimvq/vq/layer_quantizer.h"

namespace vimvq::calib {

std::vector<int> supported_widths(vq::Method method) {
  return method == vq::Method::kRtn ? std::vector<int>{1, 2, 3, 4, 5, 6, 7, 8} : std::vector<int>{1, 2, 3, 4};
}

std::vector<int64_t> codebook_caps(vq::Method method) {
  // Smaller codebooks for the layers whose codebook outweighs their codes: on a width-96 model a
  // 1-bit dt_proj's 32 codewords of 8 cost 3.6 bits per weight.
  return method == vq::Method::kRtn ? std::vector<int64_t>{0} : std::vector<int64_t>{0, 64, 16, 4};
}

namespace {

// A ranking pass, not the calibration: fewer Lloyd iterations than the quantizer's own.
constexpr int kRankingKmeansIterations = 25;

std::vector<WidthOption> width_options(const at::Tensor& weight, const at::Tensor& importance,
                                       const at::Tensor& fisher, const CalibrationParams& p,
                                       const LayerRecord& layer, uint64_t seed) {
  std::vector<WidthOption> out;
  std::set<std::pair<int, int64_t>> seen;  // (d, k): a cap at or above the width's k adds nothing
  for (int bits : supported_widths(p.method)) {
    for (int64_t cap : codebook_caps(p.method)) {
      WidthOption w;
      w.bits = bits;
      w.max_codewords = cap;
      w.plan = vq::plan_layer(p.method, bits, layer.shape, cap);
      if (!seen.emplace(w.plan.d, w.plan.k).second) continue;
      vq::LayerQuantizerOptions o;
      o.method = p.method == vq::Method::kRtn ? vq::Method::kRtn : vq::Method::kKmeans;
      o.bits = bits;
      o.max_codewords = cap;
      o.kmeans_iterations = std::min(p.kmeans_iterations, kRankingKmeansIterations);
      o.kmeans_max_points_per_centroid = p.kmeans_max_points_per_centroid;
      o.kmeans_seed = seed;
      const bool weighted = p.importance == Importance::kDiag && o.method != vq::Method::kRtn;
      const auto q = vq::make_layer_quantizer(weight, weighted ? importance : at::Tensor(), o);
      const at::Tensor delta = q->hard_weight().to(at::kCPU, at::kDouble) - weight.to(at::kCPU, at::kDouble);
      w.loss_increase = 0.5 * (fisher * delta.square()).sum().item<double>();
      out.push_back(w);
    }
  }
  std::stable_sort(out.begin(), out.end(), [](const WidthOption& a, const WidthOption& b) {
    return a.stored_bits() < b.stored_bits();
  });
  return out;
}

}  // namespace

std::vector<LayerOptions> measure_width_options(model::VimModel& model, const at::Tensor& images,
                                                const CalibrationParams& p,
                                                const std::vector<LayerRecord>& planned,
                                                int64_t sample_images) {
  const at::Tensor x = images.slice(0, 0, std::min<int64_t>(sample_images, images.size(0)));
  std::vector<std::string> names;
  for (const auto& l : planned) names.push_back(l.name);
  const auto fisher = weight_fisher(model, x, names, p.allocation_labels);
  c10::InferenceMode guard;
  auto [hidden, residual] = model.embed(x);
  std::map<std::string, at::Tensor> params;
  for (const auto& pr : model.module().named_parameters(true)) params.emplace(pr.name, pr.value);
  std::vector<LayerOptions> out;
  const int blocks = model.metadata().num_blocks;
  for (int b = 0; b < blocks; ++b) {
    std::vector<const LayerRecord*> here;
    for (const auto& l : planned)
      if (l.block == b) here.push_back(&l);
    if (!here.empty()) {
      const auto inputs = model.layer_inputs(b, hidden, residual);
      const std::string prefix = "layers." + std::to_string(b) + ".";
      for (const LayerRecord* l : here) {
        const at::Tensor in = inputs.at(l->name.substr(prefix.size()));
        // The method's own starting point weighs input channels by E[x_c^2] (docs/METHOD.md section 2).
        const at::Tensor importance =
            in.reshape({-1, in.size(-1)}).to(at::kDouble).square().mean(0).to(at::kFloat);
        const uint64_t seed = p.seed + static_cast<uint64_t>(out.size()) * 7919;
        out.push_back({l->name, width_options(params.at(l->name).detach().to(at::kFloat), importance,
                                              fisher.at(l->name), p, *l, seed)});
      }
    }
    std::tie(hidden, residual) = model.block(b, hidden, residual);
  }
  return out;
}

Allocation allocate_widths(const std::vector<LayerOptions>& layers, double target_bpw) {
  Allocation a;
  int64_t narrowest = 0, widest = 0;
  for (const auto& l : layers) {
    if (l.widths.empty()) throw Error("--target-bpw: layer " + l.name + " has no width to choose from");
    a.weights += l.widths.front().plan.numel;
    narrowest += l.widths.front().stored_bits();
    widest += l.widths.back().stored_bits();
  }
  if (a.weights == 0) throw Error("--target-bpw: no quantized weights");
  const auto budget = static_cast<int64_t>(std::floor(target_bpw * static_cast<double>(a.weights)));
  const double lowest = static_cast<double>(narrowest) / a.weights,
               highest = static_cast<double>(widest) / a.weights;
  if (budget < narrowest)
    throw Error(
        strprintf("--target-bpw %g: below what these layers can be written in (%.3f bits per weight, "
                  "every layer at its narrowest width)",
                  target_bpw, lowest));
  if (target_bpw * 0.99 > highest)
    throw Error(
        strprintf("--target-bpw %g: above what these layers take at their widest (%.3f bits per "
                  "weight); ask for at most that",
                  target_bpw, highest));
  std::vector<size_t> chosen(layers.size(), 0);
  a.stored_bits = narrowest;
  for (;;) {
    // The upgrade that buys the most error per stored bit and still fits (ties: the first layer).
    double best_ratio = -1;
    size_t best_layer = 0, best_width = 0;
    for (size_t i = 0; i < layers.size(); ++i) {
      const auto& w = layers[i].widths;
      for (size_t j = chosen[i] + 1; j < w.size(); ++j) {
        const int64_t extra = w[j].stored_bits() - w[chosen[i]].stored_bits();
        if (extra <= 0 || a.stored_bits + extra > budget) continue;
        const double ratio =
            std::max(0.0, w[chosen[i]].loss_increase - w[j].loss_increase) / static_cast<double>(extra);
        if (ratio > best_ratio) {
          best_ratio = ratio;
          best_layer = i;
          best_width = j;
        }
      }
    }
    if (best_ratio < 0) break;
    const auto& w = layers[best_layer].widths;
    a.stored_bits += w[best_width].stored_bits() - w[chosen[best_layer]].stored_bits();
    chosen[best_layer] = best_width;
  }
  for (size_t i = 0; i < layers.size(); ++i) {
    const WidthOption& w = layers[i].widths[chosen[i]];
    a.bits[layers[i].name] = w.bits;
    if (w.max_codewords != 0) a.max_codewords[layers[i].name] = w.max_codewords;
  }
  if (a.bpw() < 0.99 * target_bpw)
    throw Error(
        strprintf("--target-bpw %g: the widths these layers support reach %.4f at most without going "
                  "over, more than 1 %% below",
                  target_bpw, a.bpw()));
  return a;
}

}  // namespace vimvq::calib
