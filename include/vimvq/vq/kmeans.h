// Weighted k-means (docs/METHOD.md section 2): k-means++ seeding, Lloyd iterations with early stop,
// empty clusters re-seeded from the largest one, per-position importance weights. Like faiss, a
// large input trains on a seeded sample of max_points_per_centroid * k rows: 256 rows per
// centroid place a centroid about as well as millions do, and a Vim-B in_proj has 590k
// sub-vectors for 256 codewords. Distances by
// matrix products over row chunks (on CPU, fused kernels that never hold a distance matrix), so
// memory stays bounded for any layer. Seeded and deterministic on CPU, for any thread count.
// Works on CPU and CUDA tensors alike.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace vimvq::vq {

struct KMeansParams {
  int64_t k = 256;
  int iterations = 100;          // Lloyd iterations at most
  bool stop_when_stable = true;  // stop once no assignment changes
  uint64_t seed = 1234;
  int64_t chunk_rows = 16384;  // tensor formulation: rows per distance block, memory ~ chunk_rows * k floats
  bool fused_cpu = true;  // CPU data: fused per-row kernels (false: the tensor formulation other devices use)
  int64_t max_points_per_centroid = 256;  // train on a sample above k * this many rows (0: every row)
};

struct KMeansResult {
  at::Tensor centroids;   // (k, d)
  at::Tensor assignment;  // (n) int64: nearest centroid of every row (sampled: under the final centroids)
  std::vector<double> objective;  // weighted SSE of the training rows after each assignment step
  int64_t training_rows = 0;      // n, or the sample's size
  int iterations_run = 0;
  int empty_reseeds = 0;
};

// dist[j, c] = sum_t w[j, t] (x[j, t] - C[c, t])^2 for a chunk of rows. w undefined: unweighted.
at::Tensor weighted_sq_distances(const at::Tensor& x, const at::Tensor& w, const at::Tensor& centroids);

// Nearest centroid of every row, chunked: (min distance, index).
std::pair<at::Tensor, at::Tensor> nearest_centroids(const at::Tensor& x, const at::Tensor& w,
                                                    const at::Tensor& centroids, int64_t chunk_rows);

// The `count` nearest centroids of every row, nearest first: (distances (n, count), indices (n,
// count) int64). CPU with fused_cpu: one pass of the fused kernel, distances summed term by term
// as the k-means assignment does (count up to 16); otherwise weighted_sq_distances and topk,
// chunk_rows rows at a time.
std::pair<at::Tensor, at::Tensor> nearest_n_centroids(const at::Tensor& x, const at::Tensor& w,
                                                      const at::Tensor& centroids, int64_t count,
                                                      int64_t chunk_rows, bool fused_cpu = true);

// x: (n, d) float; weights: (n, d) non-negative, or an undefined tensor for plain k-means.
KMeansResult weighted_kmeans(const at::Tensor& x, const at::Tensor& weights, const KMeansParams& params);

}  // namespace vimvq::vq
