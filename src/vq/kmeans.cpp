#include "vimvq/vq/kmeans.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <random>
#include <tuple>

#include "src/vq/kmeans_cpu.h"
#include "vimvq/util/error.h"

namespace vimvq::vq {
namespace {

// Distances of every row to one point, chunk-free (O(n * d)).
at::Tensor distances_to_point(const at::Tensor& x, const at::Tensor& w, const at::Tensor& point) {
  const at::Tensor diff2 = (x - point.unsqueeze(0)).square();
  return (w.defined() ? diff2 * w : diff2).sum(1);
}

// Deterministic draw of an index with probability proportional to `mass` (CPU, float64 sums).
int64_t sample_proportional(const at::Tensor& mass, std::mt19937_64& rng) {
  const at::Tensor cumulative = mass.to(at::kCPU).to(at::kDouble).cumsum(0);
  const double total = cumulative[-1].item<double>();
  const int64_t n = mass.numel();
  if (!(total > 0)) return static_cast<int64_t>(rng() % static_cast<uint64_t>(n));
  const double r = std::uniform_real_distribution<double>(0.0, total)(rng);
  const at::Tensor pos =
      at::searchsorted(cumulative, at::scalar_tensor(r, cumulative.options()), false, true);
  return std::min<int64_t>(pos.item<int64_t>(), n - 1);
}

at::Tensor kmeans_plus_plus_tensor(const at::Tensor& x, const at::Tensor& w, int64_t k,
                                   std::mt19937_64& rng) {
  const int64_t n = x.size(0);
  at::Tensor centroids = at::empty({k, x.size(1)}, x.options());
  int64_t first = static_cast<int64_t>(rng() % static_cast<uint64_t>(n));
  centroids[0].copy_(x[first]);
  at::Tensor min_dist = distances_to_point(x, w, x[first]);
  for (int64_t c = 1; c < k; ++c) {
    const int64_t pick = sample_proportional(min_dist, rng);
    centroids[c].copy_(x[pick]);
    min_dist = at::minimum(min_dist, distances_to_point(x, w, x[pick]));
  }
  return centroids;
}

// `count` distinct rows of n, ascending, drawn by a partial Fisher-Yates shuffle (the same on
// every device and thread count).
at::Tensor sample_rows(int64_t n, int64_t count, std::mt19937_64& rng) {
  std::vector<int64_t> rows(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) rows[i] = i;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t j = i + static_cast<int64_t>(rng() % static_cast<uint64_t>(n - i));
    std::swap(rows[i], rows[j]);
  }
  rows.resize(static_cast<size_t>(count));
  std::sort(rows.begin(), rows.end());
  return at::tensor(rows, at::kLong);
}

}  // namespace

at::Tensor weighted_sq_distances(const at::Tensor& x, const at::Tensor& w, const at::Tensor& centroids) {
  const at::Tensor c2 = centroids.square();
  at::Tensor d;
  if (w.defined()) {
    // sum_t w x^2 - 2 (w x) . c + w . c^2
    d = (w * x.square()).sum(1, true) - 2 * at::mm(w * x, centroids.t()) + at::mm(w, c2.t());
  } else {
    d = x.square().sum(1, true) - 2 * at::mm(x, centroids.t()) + c2.sum(1).unsqueeze(0);
  }
  return d.clamp_min_(0);
}

namespace {

// Per chunk of rows, reduce(distances) -> (values, indices) of the chunk's (rows x k) weighted
// distance matrix, written into tensors of `shape` (first dimension: rows).
template <typename Reduce>
std::pair<at::Tensor, at::Tensor> reduce_distance_chunks(const at::Tensor& x, const at::Tensor& w,
                                                         const at::Tensor& centroids, int64_t chunk_rows,
                                                         at::IntArrayRef shape, Reduce reduce) {
  const int64_t n = x.size(0);
  at::Tensor best = at::empty(shape, x.options());
  at::Tensor index = at::empty(shape, x.options().dtype(at::kLong));
  for (int64_t start = 0; start < n; start += chunk_rows) {
    const int64_t end = std::min(n, start + chunk_rows);
    auto [value, arg] = reduce(
        weighted_sq_distances(x.slice(0, start, end), w.defined() ? w.slice(0, start, end) : w, centroids));
    best.slice(0, start, end).copy_(value);
    index.slice(0, start, end).copy_(arg);
  }
  return {best, index};
}

std::pair<at::Tensor, at::Tensor> nearest_centroids_tensor(const at::Tensor& x, const at::Tensor& w,
                                                           const at::Tensor& centroids, int64_t chunk_rows) {
  return reduce_distance_chunks(x, w, centroids, chunk_rows, {x.size(0)},
                                [](const at::Tensor& d) { return d.min(1); });
}

// Weighted mean per dimension (minimises the weighted SSE of a fixed assignment); a dimension
// whose weights sum to zero in a cluster takes the plain mean (any value is optimal there).
std::pair<at::Tensor, at::Tensor> cluster_means_tensor(const at::Tensor& x, const at::Tensor& w,
                                                       const at::Tensor& assign, int64_t k) {
  const int64_t d = x.size(1);
  const at::Tensor num = at::zeros({k, d}, x.options()).index_add_(0, assign, w.defined() ? w * x : x);
  const at::Tensor den =
      at::zeros({k, d}, x.options()).index_add_(0, assign, w.defined() ? w : at::ones_like(x));
  const at::Tensor sum = at::zeros({k, d}, x.options()).index_add_(0, assign, x);
  const at::Tensor counts = at::bincount(assign, {}, k);
  const at::Tensor plain = sum / counts.clamp_min(1).to(x.dtype()).unsqueeze(1);
  return {at::where(den > 0, num / den.clamp_min(1e-30), plain), counts};
}

}  // namespace

std::pair<at::Tensor, at::Tensor> nearest_centroids(const at::Tensor& x, const at::Tensor& w,
                                                    const at::Tensor& centroids, int64_t chunk_rows) {
  if (!x.is_cpu()) return nearest_centroids_tensor(x, w, centroids, chunk_rows);
  at::Tensor best, index;
  cpu::nearest_centroids(x.to(at::kFloat).contiguous(), w.defined() ? w.to(at::kFloat).contiguous() : w,
                         centroids, best, index);
  return {best, index};
}

std::pair<at::Tensor, at::Tensor> nearest_n_centroids(const at::Tensor& x, const at::Tensor& w,
                                                      const at::Tensor& centroids, int64_t count,
                                                      int64_t chunk_rows, bool fused_cpu) {
  if (x.is_cpu() && fused_cpu && count <= cpu::kMaxNearest) {
    at::Tensor best, index;
    cpu::nearest_n_centroids(x.to(at::kFloat).contiguous(), w.defined() ? w.to(at::kFloat).contiguous() : w,
                             centroids, count, best, index);
    return {best, index};
  }
  return reduce_distance_chunks(
      x, w, centroids, chunk_rows, {x.size(0), count},
      [count](const at::Tensor& d) { return d.topk(count, 1, /*largest=*/false, /*sorted=*/true); });
}

KMeansResult weighted_kmeans(const at::Tensor& x_in, const at::Tensor& weights, const KMeansParams& p) {
  if (x_in.dim() != 2) throw Error("k-means: expected (n, d) data");
  const int64_t n = x_in.size(0), d = x_in.size(1);
  if (p.k < 1 || p.k > n)
    throw Error("k-means: k = " + std::to_string(p.k) + " for " + std::to_string(n) + " points");
  const at::Tensor all_x = x_in.to(at::kFloat).contiguous();
  const at::Tensor all_w = weights.defined() ? weights.to(all_x.options()).contiguous() : weights;
  if (all_w.defined() && all_w.sizes() != all_x.sizes())
    throw Error("k-means: weights must have the data's shape");
  std::mt19937_64 rng(p.seed);
  const bool fused = all_x.is_cpu() && p.fused_cpu;
  at::Tensor x = all_x, w = all_w;
  if (p.max_points_per_centroid > 0 && n / p.k >= p.max_points_per_centroid &&
      n > p.k * p.max_points_per_centroid) {
    const at::Tensor rows = sample_rows(n, p.k * p.max_points_per_centroid, rng).to(all_x.device());
    x = all_x.index_select(0, rows);
    if (w.defined()) w = all_w.index_select(0, rows);
  }
  KMeansResult r;
  r.training_rows = x.size(0);
  r.centroids = fused ? cpu::kmeans_plus_plus(x, w, p.k, rng) : kmeans_plus_plus_tensor(x, w, p.k, rng);
  at::Tensor previous;
  for (int it = 0; it < p.iterations; ++it) {
    at::Tensor dist, assign;
    if (fused) {
      cpu::nearest_centroids(x, w, r.centroids, dist, assign);
    } else {
      std::tie(dist, assign) = nearest_centroids_tensor(x, w, r.centroids, p.chunk_rows);
    }
    r.assignment = assign;
    r.objective.push_back(dist.to(at::kDouble).sum().item<double>());
    r.iterations_run = it + 1;
    if (p.stop_when_stable && previous.defined() && at::equal(previous, assign)) break;
    previous = assign;
    auto [updated, counts_on_device] =
        fused ? cpu::cluster_means(x, w, assign, p.k) : cluster_means_tensor(x, w, assign, p.k);
    const at::Tensor counts = counts_on_device.to(at::kCPU).contiguous();
    // Empty clusters: a perturbed copy of the largest cluster's centroid (faiss's split); the
    // largest keeps its own centroid, so the objective cannot increase.
    std::vector<int64_t> sizes(counts.data_ptr<int64_t>(), counts.data_ptr<int64_t>() + p.k);
    for (int64_t c = 0; c < p.k; ++c) {
      if (sizes[c] != 0) continue;
      const int64_t big = std::max_element(sizes.begin(), sizes.end()) - sizes.begin();
      const at::Tensor sign = (at::arange(d, x.options()).remainder(2) * 2 - 1);
      updated[c].copy_(updated[big] + sign * (updated[big].abs() + 1e-6) * (1.0 / 1024));
      sizes[c] = sizes[big] / 2;
      sizes[big] -= sizes[c];
      ++r.empty_reseeds;
    }
    r.centroids = updated;
  }
  if (r.training_rows < n) r.assignment = nearest_centroids(all_x, all_w, r.centroids, p.chunk_rows).second;
  return r;
}

}  // namespace vimvq::vq
