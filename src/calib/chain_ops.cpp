#include "src/calib/chain_ops.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

namespace vimvq::calib {
namespace {

template <typename Forward>
Chain sliced(int64_t rows, int64_t slice_rows, Forward forward) {
  c10::NoGradGuard no_grad;
  std::vector<at::Tensor> hs, rs;
  for (int64_t s = 0; s < rows; s += slice_rows) {
    auto [h, r] = forward(s, std::min(rows, s + slice_rows));
    hs.push_back(h);
    rs.push_back(r);
  }
  return {at::cat(hs), at::cat(rs)};
}

// The mean over the first `rows` rows, summed slice by slice: the same order whether the slices
// are computed here or were computed by run_block, so both give the same bits.
template <typename HiddenOfSlice>
double sliced_mse(int64_t rows, int64_t slice_rows, const at::Tensor& target, HiddenOfSlice hidden) {
  c10::NoGradGuard no_grad;
  double sum = 0;
  int64_t count = 0;
  for (int64_t s = 0; s < rows; s += slice_rows) {
    const int64_t e = std::min(rows, s + slice_rows);
    const at::Tensor h = hidden(s, e);
    sum += (h - target.slice(0, s, e)).square().sum().item<double>();
    count += h.numel();
  }
  return sum / count;
}

}  // namespace

Chain embed_chain(model::VimModel& m, const at::Tensor& images, int64_t slice_rows) {
  return sliced(images.size(0), slice_rows,
                [&](int64_t s, int64_t e) { return m.embed(images.slice(0, s, e)); });
}

Chain run_block(model::VimModel& m, int b, const Chain& in, int64_t slice_rows) {
  return sliced(in.hidden.size(0), slice_rows, [&](int64_t s, int64_t e) {
    return m.block(b, in.hidden.slice(0, s, e), in.residual.slice(0, s, e));
  });
}

double mean_squared_error(const at::Tensor& output, const at::Tensor& target, int64_t rows,
                          int64_t slice_rows) {
  return sliced_mse(rows, slice_rows, target, [&](int64_t s, int64_t e) { return output.slice(0, s, e); });
}

at::Tensor spread_rows(int64_t n, int64_t count, at::Device device) {
  return at::arange(count, at::kLong).mul_(n).div_(count, "floor").to(device);
}

double block_loss(model::VimModel& m, int b, const Chain& in, const at::Tensor& target, int64_t rows,
                  int64_t slice_rows) {
  return sliced_mse(rows, slice_rows, target, [&](int64_t s, int64_t e) {
    return m.block(b, in.hidden.slice(0, s, e), in.residual.slice(0, s, e)).first;
  });
}

}  // namespace vimvq::calib
