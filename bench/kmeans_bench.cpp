// Benchmark helper (not a test): vimvq's k-means on the sub-vectors of every quantizable layer of
// a model, unweighted, fixed iteration count (no early stop). Prints one JSON line per layer:
// seconds and final objective (sum of squared distances to the nearest final centroid).
// Driven by scripts/bench_kmeans.py, which runs faiss on the same data.
#include <ATen/Parallel.h>
#include <torch/script.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "vimvq/model/vim_model.h"
#include "vimvq/vq/kmeans.h"
#include "vimvq/vq/layout.h"
#include "vimvq/vq/subvectors.h"

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: %s MODEL BITS ITERATIONS THREADS\n", argv[0]);
    return 2;
  }
  const int bits = std::stoi(argv[2]), iterations = std::stoi(argv[3]);
  at::set_num_threads(std::stoi(argv[4]));
  auto model = vimvq::model::VimModel::load(argv[1]);
  std::map<std::string, at::Tensor> params;
  for (const auto& p : model.module().named_parameters(true)) params.emplace(p.name, p.value.detach());
  for (const auto& layer : model.quantizable_layers()) {
    const auto shape = vimvq::vq::vq_shape(bits, layer.numel);
    const at::Tensor sub = vimvq::vq::to_subvectors(params.at(layer.name), shape.d).contiguous();
    vimvq::vq::KMeansParams p;
    p.k = shape.k;
    p.iterations = iterations;
    p.stop_when_stable = false;
    const auto t0 = std::chrono::steady_clock::now();
    const auto r = vimvq::vq::weighted_kmeans(sub, at::Tensor(), p);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const auto nearest = vimvq::vq::nearest_centroids(sub, at::Tensor(), r.centroids, p.chunk_rows);
    std::printf(
        "{\"layer\": \"%s\", \"n\": %lld, \"k\": %lld, \"d\": %d, \"seconds\": %.6f, \"objective\": %.9g}\n",
        layer.name.c_str(), static_cast<long long>(sub.size(0)), static_cast<long long>(shape.k), shape.d,
        seconds, nearest.first.to(at::kDouble).sum().item<double>());
  }
  return 0;
}
