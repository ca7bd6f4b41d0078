// The CUDA decode of a quantized weight into a dense scratch buffer (src/ops/vq_linear_cuda.cpp
// multiplies it with cuBLAS). One thread per element, as the CPU reference: a layer's decode is a
// few microseconds against its product, so nothing fancier is justified until measured.
#include <cuda_runtime.h>

#include "src/ops/vq_decode_cuda.h"

namespace vimvq::ops::cuda {
namespace {

__global__ void decode_kernel(const uint8_t* codes, const float* codebook, int64_t numel, int d, int64_t k,
                              int64_t per_group, float* out) {
  const int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= numel) return;
  const int64_t j = e / d;
  const int64_t g = j / per_group;
  out[e] = codebook[(g * k + codes[j]) * d + e % d];
}

}  // namespace

void decode(const uint8_t* codes, const float* codebook, int64_t numel, int d, int64_t k, int64_t groups,
            float* out, void* stream) {
  if (numel == 0) return;
  const int64_t n_sub = (numel + d - 1) / d;
  const int threads = 256;
  const int64_t blocks = (numel + threads - 1) / threads;
  decode_kernel<<<static_cast<unsigned>(blocks), threads, 0, static_cast<cudaStream_t>(stream)>>>(
      codes, codebook, numel, d, k, n_sub / groups, out);
}

}  // namespace vimvq::ops::cuda
