#include "src/vq/convex_combination_cpu.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace vimvq::vq::cpu {
namespace {

// Rows per codebook-gradient partial: the partials are summed in chunk order afterwards, so the
// result is the same for any thread count.
constexpr int64_t kChunkRows = 4096;

struct Views {
  int64_t n_sub, n, k, d;
  const float* z;
  const float* c;
  const int64_t* hull;
  const bool* confirmed;
  const int64_t* codes;
};

Views views(const at::Tensor& logits, const at::Tensor& codebook, const at::Tensor& hull,
            const at::Tensor& confirmed, const at::Tensor& codes) {
  return {logits.size(0),           logits.size(1),
          codebook.size(0),         codebook.size(1),
          logits.data_ptr<float>(), codebook.data_ptr<float>(),
          hull.data_ptr<int64_t>(), confirmed.data_ptr<bool>(),
          codes.data_ptr<int64_t>()};
}

// softmax of one row of n logits into r.
void row_ratios(const float* z, int64_t n, float* r) {
  const float top = *std::max_element(z, z + n);
  float sum = 0.f;
  for (int64_t i = 0; i < n; ++i) {
    r[i] = std::exp(z[i] - top);
    sum += r[i];
  }
  const float inv = 1.f / sum;
  for (int64_t i = 0; i < n; ++i) r[i] *= inv;
}

}  // namespace

at::Tensor convex_combination_forward(const at::Tensor& logits, const at::Tensor& codebook,
                                      const at::Tensor& hull, const at::Tensor& confirmed,
                                      const at::Tensor& codes) {
  const Views v = views(logits, codebook, hull, confirmed, codes);
  at::Tensor out = at::empty({v.n_sub, v.d}, codebook.options());
  float* o = out.data_ptr<float>();
  at::parallel_for(0, v.n_sub, kChunkRows, [&](int64_t begin, int64_t end) {
    std::vector<float> r(static_cast<size_t>(v.n));
    for (int64_t j = begin; j < end; ++j) {
      float* dst = o + j * v.d;
      if (v.confirmed[j]) {
        std::copy_n(v.c + v.codes[j] * v.d, v.d, dst);
        continue;
      }
      row_ratios(v.z + j * v.n, v.n, r.data());
      std::fill_n(dst, v.d, 0.f);
      for (int64_t i = 0; i < v.n; ++i) {
        const float* member = v.c + v.hull[j * v.n + i] * v.d;
        for (int64_t t = 0; t < v.d; ++t) dst[t] += r[i] * member[t];
      }
    }
  });
  return out;
}

std::pair<at::Tensor, at::Tensor> convex_combination_backward(
    const at::Tensor& grad, const at::Tensor& logits, const at::Tensor& codebook, const at::Tensor& hull,
    const at::Tensor& confirmed, const at::Tensor& codes, bool want_logits, bool want_codebook) {
  const Views v = views(logits, codebook, hull, confirmed, codes);
  const float* g = grad.data_ptr<float>();
  at::Tensor grad_logits = want_logits ? at::empty_like(logits) : at::Tensor();
  float* gz = want_logits ? grad_logits.data_ptr<float>() : nullptr;
  const int64_t chunks = (v.n_sub + kChunkRows - 1) / kChunkRows;
  std::vector<float> partial(want_codebook ? static_cast<size_t>(chunks * v.k * v.d) : 0, 0.f);
  at::parallel_for(0, chunks, 1, [&](int64_t chunk_begin, int64_t chunk_end) {
    std::vector<float> r(static_cast<size_t>(v.n));
    for (int64_t chunk = chunk_begin; chunk < chunk_end; ++chunk) {
      float* gc = want_codebook ? partial.data() + chunk * v.k * v.d : nullptr;
      const int64_t end = std::min(v.n_sub, (chunk + 1) * kChunkRows);
      for (int64_t j = chunk * kChunkRows; j < end; ++j) {
        const float* gj = g + j * v.d;
        if (v.confirmed[j]) {
          if (gz) std::fill_n(gz + j * v.n, v.n, 0.f);
          if (gc) {
            float* dst = gc + v.codes[j] * v.d;
            for (int64_t t = 0; t < v.d; ++t) dst[t] += gj[t];
          }
          continue;
        }
        row_ratios(v.z + j * v.n, v.n, r.data());
        // d loss / d z_i = r_i (a_i - sum_l r_l a_l), a_i = <g_j, C[H_ji]> (the softmax Jacobian).
        float mean = 0.f;
        for (int64_t i = 0; i < v.n; ++i) {
          const int64_t member = v.hull[j * v.n + i];
          float a = 0.f;
          for (int64_t t = 0; t < v.d; ++t) a += gj[t] * v.c[member * v.d + t];
          if (gz) gz[j * v.n + i] = a;
          mean += r[i] * a;
          if (gc) {
            float* dst = gc + member * v.d;
            for (int64_t t = 0; t < v.d; ++t) dst[t] += r[i] * gj[t];
          }
        }
        if (gz) {
          for (int64_t i = 0; i < v.n; ++i) gz[j * v.n + i] = r[i] * (gz[j * v.n + i] - mean);
        }
      }
    }
  });
  at::Tensor grad_codebook;
  if (want_codebook) {
    grad_codebook = at::zeros_like(codebook);
    float* gc = grad_codebook.data_ptr<float>();
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
      const float* p = partial.data() + chunk * v.k * v.d;
      for (int64_t e = 0; e < v.k * v.d; ++e) gc[e] += p[e];
    }
  }
  return {grad_logits, grad_codebook};
}

}  // namespace vimvq::vq::cpu
