// CPU kernels behind weighted k-means (internal to src/vq). On CPU the tensor formulation spends
// its time writing and re-reading an (n x k) distance matrix per iteration and k full passes for
// the seeding; these fuse distance, minimum and argmin per row block, so nothing (n x k) exists.
// Every row is independent, so results do not depend on the thread count.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <random>

namespace vimvq::vq::cpu {

// x, w: (n, d) contiguous float (w undefined: unweighted); centroids (k, d). Writes the weighted
// squared distance to the nearest centroid and its index (smallest index on ties).
void nearest_centroids(const at::Tensor& x, const at::Tensor& w, const at::Tensor& centroids,
                       at::Tensor& best, at::Tensor& index);

constexpr int64_t kMaxNearest = 16;

// The `count` nearest centroids of every row, nearest first (smaller index first on ties):
// best and index (n, count). count at most min(k, kMaxNearest).
void nearest_n_centroids(const at::Tensor& x, const at::Tensor& w, const at::Tensor& centroids, int64_t count,
                         at::Tensor& best, at::Tensor& index);

// k-means++ seeding: first centre uniform, then each with probability proportional to the
// weighted squared distance to the nearest centre so far (sums in float64).
at::Tensor kmeans_plus_plus(const at::Tensor& x, const at::Tensor& w, int64_t k, std::mt19937_64& rng);

// Per-cluster weighted mean of the rows assigned to it (float64 accumulation, row order); a
// dimension whose weights sum to zero takes the plain mean. Returns (means (k, d), counts (k) int64).
std::pair<at::Tensor, at::Tensor> cluster_means(const at::Tensor& x, const at::Tensor& w,
                                                const at::Tensor& assignment, int64_t k);

}  // namespace vimvq::vq::cpu
