#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "vimvq/report/metrics.h"
#include "vimvq/util/error.h"
#include "vimvq/vq/layout.h"
#include "vimvq/vq/size_plan.h"

using namespace vimvq;

TEST(Metrics, TopKAndPerClass) {
  // Six classes; rows rank classes by logit.
  const at::Tensor logits = at::tensor({6.f, 5.f, 4.f, 3.f, 2.f, 1.f,   // top-1 0
                                        1.f, 2.f, 3.f, 4.f, 5.f, 6.f,   // top-1 5
                                        1.f, 6.f, 2.f, 3.f, 4.f, 5.f})  // top-1 1, class 0 last
                                .reshape({3, 6});
  report::ClassificationMetrics m(6);
  m.add(logits, {0, 1, 0});
  EXPECT_EQ(m.labelled(), 3);
  EXPECT_NEAR(m.top1(), 100.0 / 3, 1e-9);
  EXPECT_NEAR(m.top5(), 200.0 / 3, 1e-9);  // row 2: label 1 is 5th; row 3: label 0 is 6th
  EXPECT_EQ(m.class_total(0), 2);
  EXPECT_EQ(m.class_correct(0), 1);
  m.add(logits.slice(0, 0, 1), {-1});  // unlabelled: counted, not scored
  EXPECT_EQ(m.images(), 4);
  EXPECT_EQ(m.labelled(), 3);
  EXPECT_THROW(m.add(logits.slice(0, 0, 1), {6}), Error);
}

TEST(Metrics, AgreementAndKl) {
  const at::Tensor a = at::tensor({2.f, 0.f, 0.f, 1.f}).reshape({2, 2});
  const at::Tensor b = at::tensor({2.f, 0.f, 1.f, 0.f}).reshape({2, 2});
  report::AgreementMetrics m;
  m.add(a, a);
  EXPECT_DOUBLE_EQ(m.mean_kl(), 0.0);
  EXPECT_DOUBLE_EQ(m.top1_agreement(), 100.0);
  report::AgreementMetrics d;
  d.add(a, b);
  EXPECT_DOUBLE_EQ(d.top1_agreement(), 50.0);
  // Row 2: q = softmax(1,0), p = softmax(0,1): KL = (q1 - q2) * 1 = tanh(0.5); row 1 contributes 0.
  EXPECT_NEAR(d.mean_kl(), std::tanh(0.5) / 2, 1e-9);
}

TEST(Layout, BitsTableClampAndAccounting) {
  const auto s2 = vq::vq_shape(2, 768 * 192);
  EXPECT_EQ(s2.d, 4);
  EXPECT_EQ(s2.k, 256);
  EXPECT_EQ(s2.code_bits, 8);
  EXPECT_EQ(s2.n_sub, 768 * 192 / 4);
  EXPECT_EQ(s2.index_bits(), 768 * 192 / 4 * 8);
  EXPECT_EQ(s2.codebook_bits(), 16 * 256 * 4);
  const auto s3 = vq::vq_shape(3, 1000);
  EXPECT_EQ(s3.d, 2);
  EXPECT_EQ(s3.k, 64);
  const auto tiny = vq::vq_shape(1, 100);  // 13 sub-vectors (padded tail), k clamped to 2
  EXPECT_EQ(tiny.n_sub, 13);
  EXPECT_EQ(tiny.k, 2);
  EXPECT_EQ(tiny.code_bits, 1);
  EXPECT_EQ(vq::vq_shape(2, 6 * 96).k, 32);  // dt_proj-like: 144 sub-vectors -> <= 36 -> 32
  EXPECT_THROW(vq::vq_shape(5, 100), Error);
  // --target-bpw's codebook caps: the smaller of the cap and the tiny-layer clamp wins.
  const auto capped = vq::vq_shape(1, 768 * 192, 16);
  EXPECT_EQ(capped.d, 8);
  EXPECT_EQ(capped.k, 16);
  EXPECT_EQ(capped.code_bits, 4);
  EXPECT_EQ(vq::vq_shape(2, 6 * 96, 64).k, 32);
  EXPECT_EQ(vq::vq_shape(2, 6 * 96, 4).k, 4);
  EXPECT_THROW(vq::vq_shape(2, 100, 3), Error);
  EXPECT_THROW(vq::vq_shape(2, 100, 1), Error);
  EXPECT_THROW(vq::plan_layer(vq::Method::kRtn, 2, {4, 4}, 16), Error);
  EXPECT_EQ(vq::plan_layer(vq::Method::kVimvq, 1, {768, 192}, 16).codebook_bits(), 16 * 16 * 8);
}

TEST(Metrics, WilsonInterval) {
  // Reference values from the closed form (z = 1.96): 50 of 100 gives [0.4038, 0.5962].
  const auto half = vimvq::report::wilson_interval95(50, 100);
  EXPECT_NEAR(half.low, 0.403832, 1e-6);
  EXPECT_NEAR(half.high, 0.596168, 1e-6);
  // All agreeing is not a certainty: 256 of 256 leaves 1.5 % below.
  const auto all = vimvq::report::wilson_interval95(256, 256);
  EXPECT_NEAR(all.low, 0.985216, 1e-6);
  EXPECT_EQ(all.high, 1.0);
  const auto none = vimvq::report::wilson_interval95(0, 256);
  EXPECT_EQ(none.low, 0.0);
  EXPECT_NEAR(none.high, 0.014784, 1e-6);
  const auto empty = vimvq::report::wilson_interval95(0, 0);
  EXPECT_EQ(empty.low, 0.0);
  EXPECT_EQ(empty.high, 1.0);
}
