#include "vimvq/calib/matmul_precision.h"

#include <ATen/Context.h>

namespace vimvq::calib {
namespace {

at::Float32Precision cpu_matmul_precision() {
  return at::globalContext().float32Precision(at::Float32Backend::MKLDNN, at::Float32Op::MATMUL);
}

void set_cpu_matmul_precision(at::Float32Precision p) {
  at::globalContext().setFloat32Precision(at::Float32Backend::MKLDNN, at::Float32Op::MATMUL, p);
}

}  // namespace

ScopedMatmulPrecision::ScopedMatmulPrecision(MatmulPrecision precision)
    : active_(precision == MatmulPrecision::kBf16), previous_(static_cast<int>(cpu_matmul_precision())) {
  if (active_) set_cpu_matmul_precision(at::Float32Precision::BF16);
}

ScopedMatmulPrecision::~ScopedMatmulPrecision() {
  if (active_) set_cpu_matmul_precision(static_cast<at::Float32Precision>(previous_));
}

bool cpu_matmuls_in_bf16() { return cpu_matmul_precision() == at::Float32Precision::BF16; }

}  // namespace vimvq::calib
