// calib::ScopedMatmulPrecision: bf16 products inside the scope, the previous mode after it.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "vimvq/calib/matmul_precision.h"

using namespace vimvq;
using calib::MatmulPrecision;
using calib::ScopedMatmulPrecision;

namespace {

struct Product {
  at::Tensor a = at::randn({1024, 192}, at::TensorOptions().dtype(at::kFloat));
  at::Tensor b = at::randn({192, 128}, at::TensorOptions().dtype(at::kFloat));
  at::Tensor operator()() const { return at::mm(a, b); }
};

double relative_difference(const at::Tensor& x, const at::Tensor& reference) {
  return ((x - reference).norm() / reference.norm()).item<double>();
}

}  // namespace

TEST(MatmulPrecision, Bf16InsideTheScopeFp32After) {
  at::manual_seed(3);
  const Product product;
  const at::Tensor fp32 = product();
  at::Tensor inside;
  {
    const ScopedMatmulPrecision scope(MatmulPrecision::kBf16);
    EXPECT_TRUE(calib::cpu_matmuls_in_bf16());
    inside = product();
  }
  EXPECT_FALSE(calib::cpu_matmuls_in_bf16());
  EXPECT_TRUE(at::equal(product(), fp32));  // restored: the fp32 product to the bit
  EXPECT_EQ(inside.scalar_type(), at::kFloat);
  const double rel = relative_difference(inside, fp32);
  if (calib::cpu_runs_bf16_matmuls()) {
    // Inputs rounded to 8 significant bits: a relative error of about 2^-9 per product term.
    EXPECT_GT(rel, 1e-5) << "the probe found bf16 products, yet these did not run in bf16";
    EXPECT_LT(rel, 2e-2);
  } else {
    // Where oneDNN keeps fp32 (the probe's answer), the scope changes at most a kernel's rounding.
    EXPECT_LT(rel, 1e-6) << "the probe found fp32 products, yet these moved like bf16 ones";
  }
}

TEST(MatmulPrecision, Fp32ScopeChangesNothing) {
  at::manual_seed(4);
  const Product product;
  const at::Tensor before = product();
  const ScopedMatmulPrecision scope(MatmulPrecision::kFp32);
  EXPECT_FALSE(calib::cpu_matmuls_in_bf16());
  EXPECT_TRUE(at::equal(product(), before));
}

TEST(MatmulPrecision, RestoredWhenTheStepThrows) {
  try {
    const ScopedMatmulPrecision scope(MatmulPrecision::kBf16);
    ASSERT_TRUE(calib::cpu_matmuls_in_bf16());
    throw std::runtime_error("a failed step");
  } catch (const std::runtime_error&) {
  }
  EXPECT_FALSE(calib::cpu_matmuls_in_bf16());
}
