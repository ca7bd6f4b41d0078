#include "vimvq/calib/matmul_precision.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/cpu/Utils.h>

namespace vimvq::calib {
namespace {

at::Float32Precision cpu_matmul_precision() {
  return at::globalContext().float32Precision(at::Float32Backend::MKLDNN, at::Float32Op::MATMUL);
}

void set_cpu_matmul_precision(at::Float32Precision p) {
  at::globalContext().setFloat32Precision(at::Float32Backend::MKLDNN, at::Float32Op::MATMUL, p);
}

bool cpu_has(const char* flag) {
  const auto caps = at::cpu::get_cpu_capabilities();
  const auto it = caps.find(flag);
  return it != caps.end() && it->second.isBool() && it->second.toBool();
}

}  // namespace

ScopedMatmulPrecision::ScopedMatmulPrecision(MatmulPrecision precision)
    : active_(precision == MatmulPrecision::kBf16),
      previous_(active_ ? static_cast<int>(cpu_matmul_precision()) : 0) {
  if (active_) set_cpu_matmul_precision(at::Float32Precision::BF16);
}

ScopedMatmulPrecision::~ScopedMatmulPrecision() {
  if (active_) set_cpu_matmul_precision(static_cast<at::Float32Precision>(previous_));
}

bool cpu_matmuls_in_bf16() { return cpu_matmul_precision() == at::Float32Precision::BF16; }

bool cpu_runs_bf16_matmuls() {
  // 1 + 2^-10 needs 11 significant bits, bf16 keeps 8: rounded, the sums of 256 such terms come
  // out 256 instead of 256.25, far beyond any fp32 kernel's rounding. The shape is one LibTorch
  // sends to oneDNN when the mode is on.
  static const bool honoured = [] {
    const at::Tensor a = at::full({1024, 256}, 1.0f + 1.0f / 1024, at::TensorOptions().dtype(at::kFloat));
    const at::Tensor b = at::ones({256, 128}, at::TensorOptions().dtype(at::kFloat));
    const ScopedMatmulPrecision bf16(MatmulPrecision::kBf16);
    return at::mm(a, b).max().item<float>() < 256.125f;
  }();
  return honoured;
}

bool cpu_has_amx_bf16() { return cpu_has("amx_bf16"); }

}  // namespace vimvq::calib
