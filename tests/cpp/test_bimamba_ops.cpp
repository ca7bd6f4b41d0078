// The bimamba operators' composite forms (what CUDA runs) against the CPU kernels, on the CPU:
// the composites reach the same values through vimvq::selective_scan and ATen's convolution.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <vector>

#include "vimvq/ops/bimamba.h"

namespace {

double relative_error(const at::Tensor& got, const at::Tensor& want) {
  const double scale = want.abs().max().item<double>();
  return (got - want).abs().max().item<double>() / (scale > 0 ? scale : 1.0);
}

void expect_all_close(const std::vector<at::Tensor>& got, const std::vector<at::Tensor>& want,
                      double tolerance) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i].sizes(), want[i].sizes()) << "output " << i;
    EXPECT_LE(relative_error(got[i], want[i]), tolerance) << "output " << i;
  }
}

TEST(BimambaOps, ScanCompositeMatchesTheCpuKernel) {
  at::manual_seed(7);
  const int64_t batch = 2, length = 13, width = 20, n_state = 16;
  const auto u = at::randn({batch, length, 2 * width}) * 0.5,
             delta = at::randn({batch, length, 2 * width}) * 0.5;
  const auto A = -(at::rand({2 * width, n_state}) * 3 + 0.1);
  const auto B = at::randn({batch, 2, length, n_state}) * 0.5,
             C = at::randn({batch, 2, length, n_state}) * 0.5;
  const auto D = at::randn({2 * width}), z = at::randn({batch, length, width}),
             bias = at::randn({2 * width}) * 0.3;
  const auto grad = at::randn({batch, length, width});
  using vimvq::ops::bimamba_scan_backward_composite;
  using vimvq::ops::bimamba_scan_backward_cpu;
  expect_all_close({vimvq::ops::bimamba_scan_forward_composite(u, delta, A, B, C, D, z, bias)},
                   {vimvq::ops::bimamba_scan_forward_cpu(u, delta, A, B, C, D, z, bias)}, 1e-6);
  expect_all_close(bimamba_scan_backward_composite(grad, u, delta, A, B, C, D, z, bias),
                   bimamba_scan_backward_cpu(grad, u, delta, A, B, C, D, z, bias), 1e-6);
}

TEST(BimambaOps, ConvCompositeMatchesTheCpuKernel) {
  at::manual_seed(8);
  const int64_t batch = 3, length = 17, width = 24, taps = 4;
  const auto x = at::randn({batch, length, 2 * width}).narrow(2, 0, width);  // strided, as in the mixer
  const auto weight = at::randn({2 * width, taps}), bias = at::randn({2 * width});
  const auto grad = at::randn({batch, length, 2 * width});
  expect_all_close({vimvq::ops::bimamba_conv_forward_composite(x, weight, bias)},
                   {vimvq::ops::bimamba_conv_forward_cpu(x, weight, bias)}, 1e-6);
  expect_all_close(vimvq::ops::bimamba_conv_backward_composite(grad, x, weight, bias),
                   vimvq::ops::bimamba_conv_backward_cpu(grad, x, weight, bias), 1e-5);
}

TEST(BimambaOps, ScanRefusesMismatchedShapes) {
  const auto z = at::zeros({1, 4, 8}), u = at::zeros({1, 4, 12});
  const auto A = at::zeros({16, 16}), B = at::zeros({1, 2, 4, 16}), D = at::zeros({16});
  EXPECT_THROW(vimvq::ops::bimamba_scan_forward_cpu(u, u, A, B, B, D, z, D), c10::Error);
}

}  // namespace
