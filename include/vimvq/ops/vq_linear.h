// The compressed linear layer: y = x W^T + b with W held as codes and codebooks, never whole.
//
// A Vim linear layer always sees 197 x batch rows, so a fused code+codebook kernel would not pay
// (docs/ARCHITECTURE.md, "Compressed inference"): the CPU path decodes W's output rows into a
// transient fp32 scratch panel (as many bytes as the layer's input, 2 to 16 MiB) and multiplies
// it with LibTorch's BLAS, panel by panel, writing straight into the output's columns. Decoding has a plain
// scalar reference and AVX2 and AVX-512 paths (16-byte loads and permutes, no gathers), picked at run time;
// tests compare every path with the reference.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>

#include <cstdint>
#include <string>

namespace vimvq::ops {

// How a quantized weight (rows, cols), flattened row-major, maps onto codes: element e belongs to
// sub-vector j = e / d, which reads codeword codes[j] of codebook g = j / (n_sub / groups), where
// n_sub = ceil(rows * cols / d). The codebooks are (groups * k, d) fp32 rows.
struct VqLayout {
  int64_t rows = 0, cols = 0;
  int64_t k = 0;
  int d = 0;
  int64_t groups = 1;
  int64_t n_sub() const { return (rows * cols + d - 1) / d; }
};

enum class DecodeIsa { kScalar, kAvx2, kAvx512 };

// The widest decode path this CPU runs.
DecodeIsa best_decode_isa();
bool cpu_runs(DecodeIsa isa);
const char* isa_name(DecodeIsa isa);

// Writes the weight's flattened elements [begin, end) to out (end - begin floats). codes: n_sub
// bytes, each below k; codebook: groups * k * d floats. Every path gives the reference's bits.
void decode_range(const uint8_t* codes, const float* codebook, const VqLayout& layout, int64_t begin,
                  int64_t end, float* out, DecodeIsa isa);

// The operator's layout from its arguments; throws c10::Error for a nonsensical one.
VqLayout vq_layout(int64_t rows, int64_t cols, int64_t d, int64_t groups, const at::Tensor& codebook);

// Throws c10::Error (TORCH_CHECK) unless codes (uint8, n_sub) and codebook (float, groups * k rows
// of d) fit the layout, and every code is below k: what a packed file must satisfy to run. Any
// device (a code >= k would read outside the codebook; free for k = 256).
void check_vq_operands(const at::Tensor& codes, const at::Tensor& codebook, const VqLayout& layout);

// vimvq::vq_linear on the CPU: x (..., cols) -> (..., rows), for operands check_vq_operands has
// accepted. `isa` picks the decode path (tests); the operator uses best_decode_isa().
at::Tensor vq_linear_cpu_with(const at::Tensor& x, const at::Tensor& codes, const at::Tensor& codebook,
                              const VqLayout& layout, const c10::optional<at::Tensor>& bias, DecodeIsa isa);

}  // namespace vimvq::ops
