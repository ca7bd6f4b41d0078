// vimvq::vq_linear on the CPU: decode a panel of a layer's rows (as large as its input, 2 to 16 MiB),
// multiply, next panel (include/vimvq/ops/vq_linear.h). Registered here with its schema; the CUDA kernel
// registers in vq_linear_cuda.cpp.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "vimvq/ops/vq_linear.h"

namespace vimvq::ops {
namespace {

// The decoded rows of one product (a transient scratch panel) stay within the layer input's own
// bytes, but at least kMinPanelBytes and at most kMaxPanelBytes. At 64 images every layer of Vim-T/S/B
// (the largest, Vim-B's in_proj, is 9 MiB) is decoded whole and multiplied by one BLAS call: 1 MiB
// panels cost 11 to 26 % there against the dense product, BLAS losing more on the narrower products
// than the cache saved. At one image, 2 MiB panels ran vim_base at the speed of whole-layer ones
// (0.917 against 0.922 of fp32, docs/BENCHMARKS.md), and BLAS packs the panel again: a whole 9 MiB
// layer decoded per call was about 27 MB of `vimvq eval`'s peak.
constexpr int64_t kMinPanelBytes = int64_t{1} << 21;
constexpr int64_t kMaxPanelBytes = int64_t{1} << 24;
constexpr int64_t kDecodeGrain = int64_t{1} << 15;  // elements per decode task

at::Tensor vq_linear_op(const at::Tensor& x, const at::Tensor& codes, const at::Tensor& codebook,
                        int64_t rows, int64_t cols, int64_t d, int64_t groups,
                        const c10::optional<at::Tensor>& bias) {
  const VqLayout layout = vq_layout(rows, cols, d, groups, codebook);
  check_vq_operands(codes, codebook, layout);  // every call: the operator is public
  return vq_linear_cpu_with(x, codes, codebook, layout, bias, best_decode_isa());
}

}  // namespace

VqLayout vq_layout(int64_t rows, int64_t cols, int64_t d, int64_t groups, const at::Tensor& codebook) {
  TORCH_CHECK(rows > 0 && cols > 0 && d > 0 && groups > 0,
              "vq_linear: rows, cols, d and groups must be positive");
  TORCH_CHECK(codebook.dim() == 2 && codebook.size(1) == d && codebook.size(0) % groups == 0,
              "vq_linear: codebook must be (groups * k, d)");
  VqLayout l;
  l.rows = rows;
  l.cols = cols;
  l.d = static_cast<int>(d);
  l.groups = groups;
  l.k = codebook.size(0) / groups;
  return l;
}

void check_vq_operands(const at::Tensor& codes, const at::Tensor& codebook, const VqLayout& l) {
  TORCH_CHECK(l.k >= 1 && l.k <= 256, "vq_linear: k must be in 1..256 (codes are bytes), got ", l.k);
  TORCH_CHECK(l.n_sub() % l.groups == 0, "vq_linear: ", l.n_sub(), " codes do not split into ", l.groups,
              " groups");
  TORCH_CHECK(codes.scalar_type() == at::kByte && codes.dim() == 1 && codes.numel() == l.n_sub() &&
                  codes.is_contiguous(),
              "vq_linear: codes must be a contiguous uint8 vector of ", l.n_sub(), " codes");
  TORCH_CHECK(codebook.scalar_type() == at::kFloat && codebook.is_contiguous() &&
                  codebook.numel() == l.groups * l.k * l.d,
              "vq_linear: codebook must be contiguous float (groups * k, d)");
  if (l.k < 256) {
    const uint8_t top = codes.numel() ? codes.max().item<uint8_t>() : 0;
    TORCH_CHECK(top < l.k, "vq_linear: code ", int{top}, " is not below k = ", l.k);
  }
}

at::Tensor vq_linear_cpu_with(const at::Tensor& x, const at::Tensor& codes, const at::Tensor& codebook,
                              const VqLayout& l, const c10::optional<at::Tensor>& bias, DecodeIsa isa) {
  TORCH_CHECK(x.scalar_type() == at::kFloat && x.size(-1) == l.cols, "vq_linear: x must be float (..., ",
              l.cols, ")");
  // A view whose rows are strided (x_proj's input is half of the conv's output channels) goes to
  // BLAS as it is, as F.linear passes it: copied, it held vim_tiny at 64 images to 0.93 of fp32's
  // speed, against 0.98 without (docs/BENCHMARKS.md).
  at::Tensor x2 = x.reshape({-1, l.cols});
  if (x2.stride(1) != 1 || x2.stride(0) < l.cols) x2 = x2.contiguous();
  at::Tensor out = at::empty({x2.size(0), l.rows}, x.options());
  const int64_t panel_bytes = std::clamp<int64_t>(x2.numel() * 4, kMinPanelBytes, kMaxPanelBytes);
  const int64_t panel_rows = std::clamp<int64_t>(panel_bytes / (4 * l.cols), 1, l.rows);
  at::Tensor panel = at::empty({panel_rows, l.cols}, x.options());
  const uint8_t* code_ptr = codes.data_ptr<uint8_t>();
  const float* book_ptr = codebook.data_ptr<float>();
  for (int64_t r0 = 0; r0 < l.rows; r0 += panel_rows) {
    const int64_t n = std::min(panel_rows, l.rows - r0);
    float* dst = panel.data_ptr<float>();
    const int64_t first = r0 * l.cols;
    at::parallel_for(0, n * l.cols, kDecodeGrain, [&](int64_t b, int64_t e) {
      decode_range(code_ptr, book_ptr, l, first + b, first + e, dst + b, isa);
    });
    // The output's column block is a row-major view with leading dimension `rows`: BLAS writes it
    // in place, no temporary.
    at::Tensor block = out.narrow(1, r0, n);
    at::mm_out(block, x2, panel.narrow(0, 0, n).t());
  }
  if (bias && bias->defined()) out.add_(*bias);
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape.back() = l.rows;
  return out.view(shape);
}

}  // namespace vimvq::ops

TORCH_LIBRARY_FRAGMENT(vimvq, m) {
  m.def(
      "vq_linear(Tensor x, Tensor codes, Tensor codebook, int rows, int cols, int d, int groups, Tensor? "
      "bias) -> "
      "Tensor");
}

TORCH_LIBRARY_IMPL(vimvq, CPU, m) { m.impl("vq_linear", &vimvq::ops::vq_linear_op); }
