// Sub-vector layout and bit accounting (docs/METHOD.md section 1): bits -> (k, d), the k clamp for
// tiny layers, and effective bits per weight with index and codebook bits counted separately.
#pragma once

#include <cstdint>

namespace vimvq::vq {

struct VqShape {
  int bits = 0;       // requested index bits per weight
  int d = 0;          // sub-vector length
  int64_t k = 0;      // codebook size after the clamp
  int64_t n_sub = 0;  // sub-vectors, the padded tail included
  int code_bits = 0;  // ceil(log2 k): what each packed code takes
  int64_t index_bits() const { return n_sub * code_bits; }
  int64_t codebook_bits() const { return 16 * k * d; }  // fp16 codebook
};

// max_codewords: 0 keeps the width's k; else k is at most that (a power of two, at least 2): the
// smaller codebooks --target-bpw may choose for a layer whose codebook would outweigh its codes.
// Throws vimvq::Error for an unsupported bit width (supported: 1, 2, 3, 4) or cap.
VqShape vq_shape(int bits, int64_t numel, int64_t max_codewords = 0);

int ceil_log2(int64_t k);

}  // namespace vimvq::vq
