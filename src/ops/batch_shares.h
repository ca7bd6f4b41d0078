// Ordered sums of per-batch-row shares, shared by the CPU kernels' backward passes.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>

namespace vimvq::ops {

// shares (batch, ...) -> (...): each element summed over the batch rows in row order, whatever the
// thread count (the threads split the elements, never a sum), so the same bits.
template <typename T>
at::Tensor sum_batch_shares(const at::Tensor& shares) {
  const int64_t batch = shares.size(0), n = shares.numel() / std::max<int64_t>(1, batch);
  auto total = at::zeros(shares.sizes().slice(1), shares.options());
  const T* src = shares.data_ptr<T>();
  T* dst = total.data_ptr<T>();
  at::parallel_for(0, n, 256, [&](int64_t begin, int64_t end) {
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t i = begin; i < end; ++i) dst[i] += src[b * n + i];
    }
  });
  return total;
}

}  // namespace vimvq::ops
