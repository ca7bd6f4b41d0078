#include "src/vq/kmeans_cpu.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "vimvq/util/error.h"

namespace vimvq::vq::cpu {
namespace {

// Rows per block, one GCC vector of lanes: the loops run across rows, so a centroid's distance
// to 16 rows is a few vector instructions, and the running minimum's strict `<` keeps the
// smallest index on ties.
constexpr int64_t kLanes = 16;
constexpr int kMaxDim = 16;
typedef float RowsF __attribute__((vector_size(kLanes * sizeof(float))));
typedef int32_t RowsI __attribute__((vector_size(kLanes * sizeof(int32_t))));

// A block of kLanes rows, transposed so that lane l holds row l: xt[t][l] = x[l, t]. Spare lanes
// (rows < kLanes) repeat the last row.
template <bool kWeighted>
void load_rows(const float* x, const float* w, int64_t rows, int d, RowsF* xt, RowsF* wt) {
  for (int t = 0; t < d; ++t) {
    for (int64_t l = 0; l < kLanes; ++l) {
      const int64_t r = std::min(l, rows - 1);
      xt[t][l] = x[r * d + t];
      wt[t][l] = kWeighted ? w[r * d + t] : 1.f;
    }
  }
}

// The weighted squared distance of every lane's row to one centroid. D > 0: the sub-vector length
// known at compile time (fully unrolled); D == 0: runtime `dim`.
template <int D, bool kWeighted>
RowsF distance_to(const RowsF* xt, const RowsF* wt, const float* c, int dim) {
  const int d = D > 0 ? D : dim;
  RowsF acc = RowsF{};
  for (int t = 0; t < d; ++t) {
    const RowsF diff = xt[t] - c[t];
    acc += kWeighted ? wt[t] * diff * diff : diff * diff;
  }
  return acc;
}

// The `count` nearest centroids of each lane's row, nearest first: each centroid is inserted into
// the lanes' sorted lists by compare-and-swap down the list, so a strict `<` keeps the smaller
// index first on ties. N > 0: count known at compile time (1: the nearest, the k-means
// assignment).
template <int D, int N, bool kWeighted>
void nearest_n_in_block(const float* x, const float* w, int64_t rows, int dim, const float* centroids,
                        int64_t k, int count, float* best, int64_t* index) {
  const int d = D > 0 ? D : dim;
  const int n = N > 0 ? N : count;
  RowsF xt[kMaxDim], wt[kMaxDim];
  load_rows<kWeighted>(x, w, rows, d, xt, wt);
  RowsF value[kMaxNearest];
  RowsI which[kMaxNearest];
  for (int i = 0; i < n; ++i) {
    value[i] = RowsF{} + std::numeric_limits<float>::infinity();
    which[i] = RowsI{};
  }
  for (int64_t j = 0; j < k; ++j) {
    RowsF acc = distance_to<D, kWeighted>(xt, wt, centroids + j * d, d);
    RowsI id = RowsI{} + static_cast<int32_t>(j);
    for (int i = 0; i < n; ++i) {
      const RowsI less = acc < value[i];
      const RowsF v = value[i];
      const RowsI v_id = which[i];
      value[i] = less ? acc : v;
      which[i] = less ? id : v_id;
      acc = less ? v : acc;
      id = less ? v_id : id;
    }
  }
  for (int64_t l = 0; l < rows; ++l) {
    for (int i = 0; i < n; ++i) {
      best[l * n + i] = value[i][l];
      index[l * n + i] = which[i][l];
    }
  }
}

// Runs block(row, rows) over every block of kLanes rows, in parallel; cost_per_row: the work a
// row costs relative to one multiply-add, for the grain.
template <typename Block>
void for_row_blocks(int64_t n, int64_t cost_per_row, const Block& block) {
  const int64_t blocks = (n + kLanes - 1) / kLanes;
  const int64_t grain = std::max<int64_t>(1, 65536 / std::max<int64_t>(cost_per_row, 1));
  at::parallel_for(0, blocks, grain, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const int64_t row = b * kLanes;
      block(row, std::min(kLanes, n - row));
    }
  });
}

template <int D, int N, bool kWeighted>
void nearest_n_all(const float* x, const float* w, int64_t n, int d, const float* centroids, int64_t k,
                   int count, float* best, int64_t* index) {
  for_row_blocks(n, k * (d + count), [&](int64_t row, int64_t rows) {
    nearest_n_in_block<D, N, kWeighted>(x + row * d, kWeighted ? w + row * d : nullptr, rows, d, centroids, k,
                                        count, best + row * count, index + row * count);
  });
}

// Sub-vector lengths 1, 2, 4 and 8 unrolled, any other generic.
template <int N, bool kWeighted>
void nearest_n_by_length(const float* x, const float* w, int64_t n, int d, const float* c, int64_t k,
                         int count, float* best, int64_t* index) {
  switch (d) {
    case 1:
      return nearest_n_all<1, N, kWeighted>(x, w, n, d, c, k, count, best, index);
    case 2:
      return nearest_n_all<2, N, kWeighted>(x, w, n, d, c, k, count, best, index);
    case 4:
      return nearest_n_all<4, N, kWeighted>(x, w, n, d, c, k, count, best, index);
    case 8:
      return nearest_n_all<8, N, kWeighted>(x, w, n, d, c, k, count, best, index);
    default:
      return nearest_n_all<0, N, kWeighted>(x, w, n, d, c, k, count, best, index);
  }
}

// The k-means assignment (1) and the hull's default (4) unrolled, any other count generic.
template <bool kWeighted>
void nearest_n_dispatch(const float* x, const float* w, int64_t n, int d, const float* c, int64_t k,
                        int count, float* best, int64_t* index) {
  if (count == 1) return nearest_n_by_length<1, kWeighted>(x, w, n, d, c, k, count, best, index);
  if (count == 4) return nearest_n_by_length<4, kWeighted>(x, w, n, d, c, k, count, best, index);
  nearest_n_by_length<0, kWeighted>(x, w, n, d, c, k, count, best, index);
}

float sq_distance(const float* x, const float* w, const float* point, int d) {
  float acc = 0.f;
  for (int t = 0; t < d; ++t) {
    const float diff = x[t] - point[t];
    acc += w ? w[t] * diff * diff : diff * diff;
  }
  return acc;
}

void check_shapes(const at::Tensor& x, const at::Tensor& w, const at::Tensor& centroids) {
  if (x.dim() != 2 || centroids.dim() != 2 || centroids.size(1) != x.size(1) ||
      (w.defined() && w.sizes() != x.sizes()))
    throw Error("k-means: expected (n, d) data, (n, d) weights and (k, d) centroids");
  if (x.size(1) > kMaxDim)
    throw Error("k-means: sub-vector length " + std::to_string(x.size(1)) + " > " + std::to_string(kMaxDim));
}

}  // namespace

void nearest_n_centroids(const at::Tensor& x, const at::Tensor& w, const at::Tensor& centroids, int64_t count,
                         at::Tensor& best, at::Tensor& index) {
  check_shapes(x, w, centroids);
  const int64_t n = x.size(0), k = centroids.size(0);
  if (count < 1 || count > std::min<int64_t>(k, kMaxNearest))
    throw Error("k-means: " + std::to_string(count) + " nearest of " + std::to_string(k) +
                " centroids (at most " + std::to_string(kMaxNearest) + ")");
  const int d = static_cast<int>(x.size(1));
  const int m = static_cast<int>(count);
  const at::Tensor c = centroids.to(at::kFloat).contiguous();
  best = at::empty({n, count}, x.options());
  index = at::empty({n, count}, x.options().dtype(at::kLong));
  if (n == 0) return;
  if (w.defined()) {
    nearest_n_dispatch<true>(x.data_ptr<float>(), w.data_ptr<float>(), n, d, c.data_ptr<float>(), k, m,
                             best.data_ptr<float>(), index.data_ptr<int64_t>());
  } else {
    nearest_n_dispatch<false>(x.data_ptr<float>(), nullptr, n, d, c.data_ptr<float>(), k, m,
                              best.data_ptr<float>(), index.data_ptr<int64_t>());
  }
}

void nearest_centroids(const at::Tensor& x, const at::Tensor& w, const at::Tensor& centroids,
                       at::Tensor& best, at::Tensor& index) {
  nearest_n_centroids(x, w, centroids, 1, best, index);
  best = best.view({x.size(0)});
  index = index.view({x.size(0)});
}

at::Tensor kmeans_plus_plus(const at::Tensor& x, const at::Tensor& w, int64_t k, std::mt19937_64& rng) {
  const int64_t n = x.size(0);
  const int d = static_cast<int>(x.size(1));
  const float* xp = x.data_ptr<float>();
  const float* wp = w.defined() ? w.data_ptr<float>() : nullptr;
  at::Tensor centroids = at::empty({k, d}, x.options());
  float* cp = centroids.data_ptr<float>();
  std::vector<float> min_dist(static_cast<size_t>(n));
  auto add_centre = [&](int64_t c, int64_t pick) {
    std::copy(xp + pick * d, xp + (pick + 1) * d, cp + c * d);
    at::parallel_for(0, n, 4096, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const float dist = sq_distance(xp + i * d, wp ? wp + i * d : nullptr, cp + c * d, d);
        min_dist[i] = c == 0 ? dist : std::min(min_dist[i], dist);
      }
    });
  };
  add_centre(0, static_cast<int64_t>(rng() % static_cast<uint64_t>(n)));
  for (int64_t c = 1; c < k; ++c) {
    double total = 0;
    for (const float v : min_dist) total += v;
    int64_t pick = n - 1;
    if (!(total > 0)) {
      pick = static_cast<int64_t>(rng() % static_cast<uint64_t>(n));
    } else {
      const double r = std::uniform_real_distribution<double>(0.0, total)(rng);
      double cumulative = 0;
      for (int64_t i = 0; i < n; ++i) {
        cumulative += min_dist[i];
        if (cumulative > r) {
          pick = i;
          break;
        }
      }
    }
    add_centre(c, pick);
  }
  return centroids;
}

std::pair<at::Tensor, at::Tensor> cluster_means(const at::Tensor& x, const at::Tensor& w,
                                                const at::Tensor& assignment, int64_t k) {
  const int64_t n = x.size(0);
  const int d = static_cast<int>(x.size(1));
  const float* xp = x.data_ptr<float>();
  const float* wp = w.defined() ? w.data_ptr<float>() : nullptr;
  const at::Tensor assign = assignment.contiguous();
  const int64_t* ap = assign.data_ptr<int64_t>();
  std::vector<double> weighted(k * d), weight(k * d), plain(k * d);
  at::Tensor counts = at::zeros({k}, assignment.options());
  int64_t* cnt = counts.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t c = ap[i];
    ++cnt[c];
    for (int t = 0; t < d; ++t) {
      const double xv = xp[i * d + t], wv = wp ? wp[i * d + t] : 1.0;
      weighted[c * d + t] += wv * xv;
      weight[c * d + t] += wv;
      plain[c * d + t] += xv;
    }
  }
  at::Tensor means = at::empty({k, d}, x.options());
  float* mp = means.data_ptr<float>();
  for (int64_t c = 0; c < k; ++c) {
    for (int t = 0; t < d; ++t) {
      const int64_t j = c * d + t;
      mp[j] = static_cast<float>(weight[j] > 0 ? weighted[j] / weight[j]
                                               : plain[j] / std::max<int64_t>(cnt[c], 1));
    }
  }
  return {means, counts};
}

}  // namespace vimvq::vq::cpu
