// vq::LayerQuantizer: every method finishes into what its size plan says, k-means is the tested
// k-means function, and the convex rules react to events as docs/METHOD.md sections 4 to 6 say.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "vimvq/vq/baselines.h"
#include "vimvq/vq/layer_quantizer.h"
#include "vimvq/vq/layout.h"

using namespace vimvq;
using vq::EventKind;
using vq::Method;

namespace {

at::Tensor random_weight(int64_t rows, int64_t cols, uint64_t seed) {
  at::Generator g = at::detail::createCPUGenerator(seed);
  return at::randn({rows, cols}, g, at::kFloat);
}

std::unique_ptr<vq::LayerQuantizer> make(Method m, int bits, const at::Tensor& w, double harden = 0.99) {
  vq::LayerQuantizerOptions o;
  o.method = m;
  o.bits = bits;
  o.kmeans_iterations = 10;
  o.vq4dit_harden_fraction = harden;
  return vq::make_layer_quantizer(w, at::Tensor(), o);
}

}  // namespace

TEST(LayerQuantizer, EveryMethodAndWidthFinishesIntoItsPlan) {
  const at::Tensor w = random_weight(64, 48, 1);
  for (Method m : {Method::kRtn, Method::kKmeans, Method::kVimvq, Method::kVq4dit}) {
    for (int bits : {1, 2, 3}) {
      auto q = make(m, bits, w);
      q->on_event({EventKind::kHardenAll, 0});
      const vq::QuantizedWeight stored = q->finish("layer");
      EXPECT_EQ(stored.method, m);
      EXPECT_EQ(stored.plan(), vq::plan_layer(m, bits, {64, 48})) << vq::method_name(m) << " " << bits;
      EXPECT_EQ(static_cast<int64_t>(stored.codes.size()), stored.plan().n_sub());
      EXPECT_TRUE(stored.dequantize().sizes().equals({64, 48}));
      // The stored weight is the hard weight up to the fp16 rounding of the codebook.
      EXPECT_LT((stored.dequantize() - q->hard_weight()).abs().max().item<double>(), 5e-3);
      EXPECT_EQ(q->progress().confirmed, q->progress().total);
    }
  }
}

TEST(LayerQuantizer, KMeansIsTheTestedKMeansFunction) {
  const at::Tensor w = random_weight(32, 64, 2);
  auto q = make(Method::kKmeans, 2, w);
  vq::KMeansParams kp;
  kp.k = vq::vq_shape(2, w.numel()).k;
  kp.iterations = 10;
  const auto direct = vq::kmeans_quantize(w, at::Tensor(), 4, kp);
  EXPECT_TRUE(at::equal(q->hard_weight(), direct.weight));
  EXPECT_TRUE(q->ratio_tensors().empty());
}

TEST(LayerQuantizer, RtnMatchesRoundToNearest) {
  const at::Tensor w = random_weight(8, 16, 3);
  EXPECT_TRUE(at::equal(make(Method::kRtn, 3, w)->hard_weight(), vq::rtn_quantize(w, 3)));
}

TEST(LayerQuantizer, ConvexConfirmsToAFractionAndReportsTruncation) {
  auto q = make(Method::kVimvq, 2, random_weight(64, 64, 4));
  EXPECT_EQ(q->progress().confirmed, 0);
  q->on_event({EventKind::kConfirmToFraction, 0.5});
  EXPECT_EQ(q->progress().confirmed, q->progress().total / 2);
  const double t = q->on_event({EventKind::kHardenAll, 0});
  EXPECT_EQ(q->progress().confirmed, q->progress().total);
  EXPECT_GT(t, 0);
  EXPECT_GE(q->progress().truncation_error, t);
}

TEST(LayerQuantizer, Vq4ditHardensALayerAtItsThreshold) {
  const at::Tensor w = random_weight(64, 64, 5);
  // Every max ratio of a two-codeword hull is at least 0.5: all are confirmed above 0.4.
  auto q = make(Method::kVq4dit, 2, w, /*harden=*/0.99);
  EXPECT_FALSE(q->codebook_tensors().front().requires_grad());  // frozen until hardened
  q->on_event({EventKind::kConfirmAbove, 1.0});                 // nothing exceeds 1
  EXPECT_EQ(q->progress().confirmed, 0);
  EXPECT_FALSE(q->codebook_tensors().front().requires_grad());
  q->on_event({EventKind::kConfirmAbove, 0.4});
  EXPECT_EQ(q->progress().confirmed, q->progress().total);
  EXPECT_TRUE(q->codebook_tensors().front().requires_grad());

  // Half confirmed with the layer's threshold at 0.5: hardened, so everything is confirmed.
  auto half = make(Method::kVq4dit, 2, w, /*harden=*/0.5);
  half->on_event({EventKind::kConfirmToFraction, 0.5});
  EXPECT_FALSE(half->codebook_tensors().front().requires_grad());
  half->on_event({EventKind::kConfirmAbove, 1.0});
  EXPECT_EQ(half->progress().confirmed, half->progress().total);
  EXPECT_TRUE(half->codebook_tensors().front().requires_grad());
}
