#include "vimvq/vq/baselines.h"

#include <ATen/ATen.h>

#include "vimvq/util/error.h"
#include "vimvq/vq/subvectors.h"

namespace vimvq::vq {

RtnResult rtn_codes(const at::Tensor& weight, int bits) {
  if (bits < 1 || bits > 16) throw Error("rtn: bits must be in 1..16");
  const at::Tensor w = weight.reshape({weight.size(0), -1}).to(at::kFloat);
  const double top = static_cast<double>((int64_t{1} << bits) - 1);
  const at::Tensor lo = std::get<0>(w.min(1, true)), hi = std::get<0>(w.max(1, true));
  const at::Tensor flat = (hi - lo) == 0;  // constant rows: every level is the constant
  const at::Tensor scale = at::where(flat, at::ones_like(lo), (hi - lo) / top);
  const at::Tensor zero = (-lo / scale).round();
  const at::Tensor q = at::where(flat, at::zeros_like(w), (w / scale).round().add(zero).clamp(0, top));
  const at::Tensor steps = at::arange(top + 1, w.options()).unsqueeze(0);
  RtnResult r;
  r.levels = at::where(flat, lo.expand({w.size(0), steps.size(1)}), (steps - zero) * scale);
  r.codes = q.to(at::kLong).reshape({-1});
  return r;
}

at::Tensor rtn_quantize(const at::Tensor& weight, int bits) {
  const RtnResult r = rtn_codes(weight, bits);
  return r.levels.gather(1, r.codes.view({weight.size(0), -1})).view(weight.sizes()).to(weight.dtype());
}

VqResult kmeans_quantize(const at::Tensor& weight, const at::Tensor& importance, int d,
                         const KMeansParams& params) {
  const at::Tensor sub = to_subvectors(weight.to(at::kFloat), d);
  KMeansResult km = weighted_kmeans(sub, importance, params);
  // Unsampled, the assignment of the last iteration is for the centroids before their last
  // update: assign again so that every code is the nearest codeword of the final codebook. A
  // sampled run has already assigned every row to the final codebook.
  VqResult r;
  r.codebook = km.centroids;
  r.codes = km.training_rows < sub.size(0)
                ? km.assignment
                : nearest_centroids(sub, importance, km.centroids, params.chunk_rows).second;
  r.weight = from_subvectors(km.centroids.index_select(0, r.codes), weight.sizes()).to(weight.dtype());
  return r;
}

}  // namespace vimvq::vq
