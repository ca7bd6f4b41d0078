// The precision of fp32 matrix products on the CPU for a scope (the calibration steps).
#pragma once

#include "vimvq/calib/params.h"

namespace vimvq::calib {

// While alive with kBf16, LibTorch's fp32 matrix products on the CPU go through oneDNN's bf16 mode:
// fp32 tensors in and out, the inputs rounded to bf16 inside the product, the sums in fp32. The mode
// is process-wide in LibTorch, so the previous one is restored on destruction, exception included.
// kFp32 leaves everything as it is. CUDA products ignore it (calib::check_model_supports refuses
// bf16 there).
class ScopedMatmulPrecision {
 public:
  explicit ScopedMatmulPrecision(MatmulPrecision precision);
  ~ScopedMatmulPrecision();
  ScopedMatmulPrecision(const ScopedMatmulPrecision&) = delete;
  ScopedMatmulPrecision& operator=(const ScopedMatmulPrecision&) = delete;

 private:
  bool active_;
  int previous_;  // when active: an at::Float32Precision, kept opaque to spare includers ATen/Context.h
};

// Whether fp32 products currently run in oneDNN's bf16 mode.
bool cpu_matmuls_in_bf16();

// Whether oneDNN honours the bf16 mode on this CPU, found by trying it once (cached). The CPU's
// flags do not say: on an AMD EPYC (Zen 4: AVX-512 BW, VL, DQ and BF16, no AMX) the products
// stayed fp32 to the bit. Where this is false, the mode changes nothing.
bool cpu_runs_bf16_matmuls();

// Whether this CPU has AMX with bf16 tiles, where bf16 products beat fp32 ones.
bool cpu_has_amx_bf16();

}  // namespace vimvq::calib
