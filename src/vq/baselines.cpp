#include "vimvq/vq/baselines.h"

#include <ATen/ATen.h>

#include "vimvq/util/error.h"
#include "vimvq/vq/subvectors.h"

namespace vimvq::vq {

at::Tensor rtn_quantize(const at::Tensor& weight, int bits) {
  if (bits < 1 || bits > 16) throw Error("rtn: bits must be in 1..16");
  const at::Tensor w = weight.reshape({weight.size(0), -1}).to(at::kFloat);
  const double levels = static_cast<double>((int64_t{1} << bits) - 1);
  const at::Tensor lo = std::get<0>(w.min(1, true)), hi = std::get<0>(w.max(1, true));
  const at::Tensor flat = (hi - lo) == 0;
  const at::Tensor scale = at::where(flat, at::ones_like(lo), (hi - lo) / levels);
  const at::Tensor zero = (-lo / scale).round();
  const at::Tensor q = (w / scale).round().add(zero).clamp(0, levels);
  const at::Tensor deq = (q - zero) * scale;
  return at::where(flat, w, deq).view(weight.sizes()).to(weight.dtype());
}

VqResult kmeans_quantize(const at::Tensor& weight, const at::Tensor& importance, int d, const KMeansParams& params) {
  const at::Tensor sub = to_subvectors(weight.to(at::kFloat), d);
  KMeansResult km = weighted_kmeans(sub, importance, params);
  // The assignment of the last iteration is for the centroids before their last update: assign
  // again so that every code is the nearest codeword of the final codebook.
  auto nearest = nearest_centroids(sub, importance, km.centroids, params.chunk_rows);
  VqResult r;
  r.codebook = km.centroids;
  r.codes = nearest.second;
  r.weight = from_subvectors(km.centroids.index_select(0, r.codes), weight.sizes()).to(weight.dtype());
  return r;
}

}  // namespace vimvq::vq
