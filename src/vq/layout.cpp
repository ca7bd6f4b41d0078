#include "vimvq/vq/layout.h"

#include <string>

#include "vimvq/util/error.h"

namespace vimvq::vq {

int ceil_log2(int64_t k) {
  int bits = 0;
  while ((int64_t{1} << bits) < k) ++bits;
  return bits;
}

VqShape vq_shape(int bits, int64_t numel, int64_t max_codewords) {
  VqShape s;
  s.bits = bits;
  // bits -> (d, k): docs/METHOD.md section 1's table (index bits per weight = log2(k) / d).
  static constexpr struct {
    int d;
    int64_t k;
  } kTable[] = {{8, 256}, {4, 256}, {2, 64}, {2, 256}};
  if (bits < 1 || bits > 4)
    throw Error("unsupported bit width " + std::to_string(bits) + " (supported: 1, 2, 3, 4)");
  if (max_codewords != 0 && (max_codewords < 2 || (max_codewords & (max_codewords - 1)) != 0))
    throw Error("unsupported codebook cap " + std::to_string(max_codewords) +
                " (a power of two, at least 2)");
  s.d = kTable[bits - 1].d;
  s.k = kTable[bits - 1].k;
  s.n_sub = (numel + s.d - 1) / s.d;
  // Tiny layers: at most N_sub/4 codewords (largest power of two), so each codeword is shared.
  int64_t cap = 1;
  while (cap * 2 <= s.n_sub / 4) cap *= 2;
  if (max_codewords != 0 && max_codewords < cap) cap = max_codewords;
  if (s.k > cap) s.k = cap;
  s.code_bits = ceil_log2(s.k);
  return s;
}

}  // namespace vimvq::vq
