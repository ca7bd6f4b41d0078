// Launcher of the CUDA decode kernel (plain pointers, so that nvcc never compiles LibTorch
// headers). The layout is the CPU kernels' (include/vimvq/ops/vq_linear.h, VqLayout).
#pragma once

#include <cstdint>

namespace vimvq::ops::cuda {

void decode(const uint8_t* codes, const float* codebook, int64_t numel, int d, int64_t k, int64_t groups,
            float* out, void* stream);

}  // namespace vimvq::ops::cuda
