// Decoding a quantized weight's elements from codes and codebooks (include/vimvq/ops/vq_linear.h).
// The vector paths copy whole codewords with 16- to 64-byte loads and stores, and look d = 1
// tables up with permutes; they touch the same floats as the reference, so they give its bits.
// GCC 12 reports the "undefined" upper lanes that its own AVX-512 intrinsics start from
// (_mm512_undefined_*) as maybe-uninitialized once they are inlined at -O3: a known false positive,
// silenced for this file only.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "vimvq/ops/vq_linear.h"

namespace vimvq::ops {
namespace {

void decode_reference(const uint8_t* codes, const float* codebook, const VqLayout& l, int64_t begin,
                      int64_t end, float* out) {
  const int64_t per_group = l.n_sub() / l.groups;
  for (int64_t e = begin; e < end; ++e) {
    const int64_t j = e / l.d;
    const int64_t g = j / per_group;
    out[e - begin] = codebook[(g * l.k + codes[j]) * l.d + e % l.d];
  }
}

// Whole codewords of one codebook: n codes, d floats each, to out.
using RunKernel = void (*)(const uint8_t* codes, int64_t n, const float* book, int64_t k, int d, float* out);

void run_generic(const uint8_t* codes, int64_t n, const float* book, int64_t /*k*/, int d, float* out) {
  for (int64_t i = 0; i < n; ++i) std::memcpy(out + i * d, book + codes[i] * d, sizeof(float) * d);
}

__attribute__((target("avx2"))) void run_avx2(const uint8_t* codes, int64_t n, const float* book, int64_t k,
                                              int d, float* out) {
  int64_t i = 0;
  if (d == 4) {
    for (; i + 2 <= n; i += 2)
      _mm256_storeu_ps(out + 4 * i, _mm256_set_m128(_mm_loadu_ps(book + 4 * codes[i + 1]),
                                                    _mm_loadu_ps(book + 4 * codes[i])));
  } else if (d == 8) {
    for (; i < n; ++i) _mm256_storeu_ps(out + 8 * i, _mm256_loadu_ps(book + 8 * codes[i]));
  } else if (d == 2) {
    for (; i + 4 <= n; i += 4) {
      int64_t w[4];
      for (int t = 0; t < 4; ++t) std::memcpy(&w[t], book + 2 * codes[i + t], 8);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 2 * i), _mm256_set_epi64x(w[3], w[2], w[1], w[0]));
    }
  } else if (d == 1 && k <= 8) {
    alignas(32) float table[8] = {};
    std::memcpy(table, book, sizeof(float) * k);
    const __m256 t = _mm256_load_ps(table);
    for (; i + 8 <= n; i += 8) {
      const __m256i idx = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(codes + i)));
      _mm256_storeu_ps(out + i, _mm256_permutevar8x32_ps(t, idx));
    }
  }
  run_generic(codes + i, n - i, book, k, d, out + i * d);
}

__attribute__((target("avx512f"))) void run_avx512(const uint8_t* codes, int64_t n, const float* book,
                                                   int64_t k, int d, float* out) {
  int64_t i = 0;
  if (d == 4) {
    for (; i + 4 <= n; i += 4) {
      __m512 v = _mm512_castps128_ps512(_mm_loadu_ps(book + 4 * codes[i]));
      v = _mm512_insertf32x4(v, _mm_loadu_ps(book + 4 * codes[i + 1]), 1);
      v = _mm512_insertf32x4(v, _mm_loadu_ps(book + 4 * codes[i + 2]), 2);
      v = _mm512_insertf32x4(v, _mm_loadu_ps(book + 4 * codes[i + 3]), 3);
      _mm512_storeu_ps(out + 4 * i, v);
    }
  } else if (d == 8) {
    for (; i + 2 <= n; i += 2) {
      const __m512d lo =
          _mm512_castpd256_pd512(_mm256_loadu_pd(reinterpret_cast<const double*>(book + 8 * codes[i])));
      const __m256d hi = _mm256_loadu_pd(reinterpret_cast<const double*>(book + 8 * codes[i + 1]));
      _mm512_storeu_pd(reinterpret_cast<double*>(out + 8 * i), _mm512_insertf64x4(lo, hi, 1));
    }
  } else if (d == 2) {
    for (; i + 8 <= n; i += 8) {
      int64_t w[8];
      for (int t = 0; t < 8; ++t) std::memcpy(&w[t], book + 2 * codes[i + t], 8);
      _mm512_storeu_si512(out + 2 * i, _mm512_set_epi64(w[7], w[6], w[5], w[4], w[3], w[2], w[1], w[0]));
    }
  } else if (d == 1 && k <= 16) {
    alignas(64) float table[16] = {};
    std::memcpy(table, book, sizeof(float) * k);
    const __m512 t = _mm512_load_ps(table);
    for (; i + 16 <= n; i += 16) {
      const __m512i idx = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + i)));
      _mm512_storeu_ps(out + i, _mm512_permutexvar_ps(idx, t));
    }
  }
  run_generic(codes + i, n - i, book, k, d, out + i * d);
}

// Partial sub-vectors at either end go through the reference; whole ones, one codebook's run at a
// time, through the kernel.
void decode_with(RunKernel kernel, const uint8_t* codes, const float* codebook, const VqLayout& l,
                 int64_t begin, int64_t end, float* out) {
  const int64_t d = l.d;
  const int64_t first_whole = std::min(end, (begin + d - 1) / d * d);
  decode_reference(codes, codebook, l, begin, first_whole, out);
  const int64_t per_group = l.n_sub() / l.groups;
  int64_t j = first_whole / d;
  const int64_t j_end = std::max(j, end / d);
  while (j < j_end) {
    const int64_t g = j / per_group;
    const int64_t run_end = std::min(j_end, (g + 1) * per_group);
    kernel(codes + j, run_end - j, codebook + g * l.k * d, l.k, l.d, out + (j * d - begin));
    j = run_end;
  }
  const int64_t tail = std::max(first_whole, j_end * d);
  decode_reference(codes, codebook, l, tail, end, out + (tail - begin));
}

}  // namespace

bool cpu_runs(DecodeIsa isa) {
  switch (isa) {
    case DecodeIsa::kScalar:
      return true;
    case DecodeIsa::kAvx2:
      return __builtin_cpu_supports("avx2");
    case DecodeIsa::kAvx512:
      return __builtin_cpu_supports("avx512f");
  }
  return false;
}

DecodeIsa best_decode_isa() {
  static const DecodeIsa best = cpu_runs(DecodeIsa::kAvx512) ? DecodeIsa::kAvx512
                                : cpu_runs(DecodeIsa::kAvx2) ? DecodeIsa::kAvx2
                                                             : DecodeIsa::kScalar;
  return best;
}

const char* isa_name(DecodeIsa isa) {
  switch (isa) {
    case DecodeIsa::kScalar:
      return "scalar";
    case DecodeIsa::kAvx2:
      return "avx2";
    case DecodeIsa::kAvx512:
      return "avx512";
  }
  return "?";
}

void decode_range(const uint8_t* codes, const float* codebook, const VqLayout& l, int64_t begin, int64_t end,
                  float* out, DecodeIsa isa) {
  switch (isa) {
    case DecodeIsa::kScalar:
      return decode_reference(codes, codebook, l, begin, end, out);
    case DecodeIsa::kAvx2:
      return decode_with(run_avx2, codes, codebook, l, begin, end, out);
    case DecodeIsa::kAvx512:
      return decode_with(run_avx512, codes, codebook, l, begin, end, out);
  }
}

}  // namespace vimvq::ops
