#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "vimvq/util/error.h"
#include "vimvq/vq/baselines.h"
#include "vimvq/vq/convex_quantizer.h"
#include "vimvq/vq/kmeans.h"
#include "vimvq/vq/packing.h"
#include "vimvq/vq/subvectors.h"

using namespace vimvq;

namespace {
at::Tensor randn(std::vector<int64_t> shape, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  return at::normal(0.0, 1.0, shape, gen);
}
at::Tensor rand(std::vector<int64_t> shape, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  return at::rand(shape, gen);
}
}  // namespace

TEST(Subvectors, RoundTripWithPaddingAndImportanceLayout) {
  const at::Tensor w = randn({5, 7}, 1);  // 35 values, d = 4 -> 9 sub-vectors, 1 padded value
  const at::Tensor sub = vq::to_subvectors(w, 4);
  ASSERT_EQ(sub.sizes(), (at::IntArrayRef{9, 4}));
  EXPECT_EQ(sub[8][3].item<float>(), 0.f);
  EXPECT_TRUE(at::equal(vq::from_subvectors(sub, w.sizes()), w));
  const at::Tensor h = at::arange(1, 8, at::kFloat);  // channel c has importance c + 1
  const at::Tensor imp = vq::subvector_importance(h, w.sizes(), 4);
  // Flattened position 9 is row 1, column 2; padding gets 0.
  EXPECT_EQ(imp.reshape({-1})[9].item<float>(), 3.f);
  EXPECT_EQ(imp[8][3].item<float>(), 0.f);
  const at::Tensor x = randn({10, 3, 7}, 2);
  EXPECT_TRUE(at::allclose(vq::channel_importance(x), x.reshape({-1, 7}).square().mean(0)));
  // A strided (transposed) input sums the same rows as its contiguous copy; a float64 input is
  // left as it was.
  const at::Tensor strided = randn({4, 7, 5}, 3).transpose(1, 2);
  const at::Tensor sums = vq::channel_square_sums(strided);
  EXPECT_EQ(sums.scalar_type(), at::kDouble);
  EXPECT_TRUE(at::equal(sums, strided.contiguous().reshape({-1, 7}).to(at::kDouble).square().sum(0)));
  const at::Tensor wide = strided.contiguous().to(at::kDouble);
  const at::Tensor before = wide.clone();
  vq::channel_square_sums(wide);
  EXPECT_TRUE(at::equal(wide, before));
}

namespace {
// k tight clusters of `per` points each around far-apart centres, in cluster order.
std::pair<at::Tensor, at::Tensor> planted_clusters(int64_t k, int64_t per, int64_t d) {
  const at::Tensor centers = randn({k, d}, 3) * 10;
  return {centers, centers.repeat_interleave(per, 0) + randn({k * per, d}, 4) * 0.05};
}
}  // namespace

TEST(KMeans, RecoversPlantedClusters) {
  const int64_t k = 8, per = 150, d = 4;
  const auto [centers, x] = planted_clusters(k, per, d);
  vq::KMeansParams p;
  p.k = k;
  p.seed = 7;
  p.chunk_rows = 100;  // several chunks
  const auto r = vq::weighted_kmeans(x, at::Tensor(), p);
  // Each planted center has a found centroid within the noise scale, and clusters are pure.
  const at::Tensor d2 = vq::weighted_sq_distances(centers, at::Tensor(), r.centroids);
  EXPECT_LT(std::get<0>(d2.min(1)).max().item<float>(), 0.01f);
  for (int64_t c = 0; c < k; ++c) {
    const at::Tensor labels = r.assignment.slice(0, c * per, (c + 1) * per);
    EXPECT_TRUE(at::all(labels == labels[0]).item<bool>());
  }
  EXPECT_LT(r.iterations_run, p.iterations);  // stopped early: assignments stable
}

TEST(KMeans, LargeInputsTrainOnASampleAndAssignEveryRow) {
  const int64_t k = 8, per = 150, d = 4;
  const auto [centers, x] = planted_clusters(k, per, d);
  vq::KMeansParams p;
  p.k = k;
  p.seed = 7;
  p.max_points_per_centroid = 20;  // 160 of the 1,200 rows
  const auto r = vq::weighted_kmeans(x, at::Tensor(), p);
  EXPECT_EQ(r.training_rows, k * 20);
  ASSERT_EQ(r.assignment.numel(), k * per);
  const at::Tensor d2 = vq::weighted_sq_distances(centers, at::Tensor(), r.centroids);
  EXPECT_LT(std::get<0>(d2.min(1)).max().item<float>(), 0.01f);
  EXPECT_TRUE(at::equal(r.assignment, vq::nearest_centroids(x, at::Tensor(), r.centroids, 512).second));
  EXPECT_TRUE(at::equal(vq::weighted_kmeans(x, at::Tensor(), p).centroids, r.centroids));  // seeded
  // At or below the threshold every row trains.
  p.max_points_per_centroid = per;
  EXPECT_EQ(vq::weighted_kmeans(x, at::Tensor(), p).training_rows, k * per);
  p.max_points_per_centroid = 0;
  EXPECT_EQ(vq::weighted_kmeans(x, at::Tensor(), p).training_rows, k * per);
}

TEST(KMeans, WeightedObjectiveNeverIncreasesAndIsDeterministic) {
  const at::Tensor x = randn({3000, 4}, 5) * at::tensor({1.f, 3.f, 0.5f, 2.f});
  const at::Tensor w = rand({3000, 4}, 6) + 0.01;
  vq::KMeansParams p;
  p.k = 64;
  p.iterations = 40;
  p.chunk_rows = 777;
  const auto a = vq::weighted_kmeans(x, w, p);
  ASSERT_GT(a.objective.size(), 3u);
  for (size_t i = 1; i < a.objective.size(); ++i)
    EXPECT_LE(a.objective[i], a.objective[i - 1] * (1 + 1e-6)) << i;
  const auto b = vq::weighted_kmeans(x, w, p);
  EXPECT_TRUE(at::equal(a.centroids, b.centroids));
  EXPECT_TRUE(at::equal(a.assignment, b.assignment));
  p.seed = 99;
  const auto c = vq::weighted_kmeans(x, w, p);
  EXPECT_FALSE(at::equal(a.centroids, c.centroids));
}

TEST(KMeans, NearestCentroidsMatchDirectForEveryLength) {
  // The fused CPU kernel has unrolled lengths (1, 2, 4, 8) and a generic one; 50 rows leave a
  // partial block of lanes.
  for (const int64_t d : {1, 2, 3, 4, 5, 8}) {
    const at::Tensor x = randn({50, d}, 8), w = rand({50, d}, 9), c = randn({16, d}, 10);
    for (const bool weighted : {true, false}) {
      const at::Tensor wd = weighted ? w : at::Tensor();
      const auto [best, idx] = vq::nearest_centroids(x, wd, c, 7);
      at::Tensor direct = (x.unsqueeze(1) - c.unsqueeze(0)).square();
      direct = (weighted ? direct * w.unsqueeze(1) : direct).sum(2);
      EXPECT_TRUE(at::allclose(best, std::get<0>(direct.min(1)), 1e-4, 1e-5)) << d;
      EXPECT_TRUE(at::equal(idx, std::get<1>(direct.min(1)))) << d;
    }
  }
}

TEST(KMeans, NearestNCentroidsAreSortedAndAgreeWithTopk) {
  // The fused kernel is unrolled for 4 of length 4 and generic otherwise; 50 rows leave a partial
  // block of lanes. Both paths must give the nearest `count`, nearest first.
  for (const int64_t d : {1, 3, 4, 8}) {
    for (const int64_t count : {1, 3, 4, 6}) {
      const at::Tensor x = randn({50, d}, 20), w = rand({50, d}, 21), c = randn({16, d}, 22);
      for (const bool weighted : {true, false}) {
        const at::Tensor wd = weighted ? w : at::Tensor();
        at::Tensor direct = (x.unsqueeze(1) - c.unsqueeze(0)).square();
        direct = (weighted ? direct * w.unsqueeze(1) : direct).sum(2);
        const auto [want, want_index] = direct.topk(count, 1, /*largest=*/false, /*sorted=*/true);
        for (const bool fused : {true, false}) {
          const auto [best, index] = vq::nearest_n_centroids(x, wd, c, count, 7, fused);
          const std::string what = "d " + std::to_string(d) + ", count " + std::to_string(count) +
                                   (weighted ? ", weighted" : "") + (fused ? ", fused" : ", tensor");
          EXPECT_TRUE(at::equal(index, want_index)) << what;
          EXPECT_TRUE(at::allclose(best, want, 1e-4, 1e-5)) << what;
          EXPECT_TRUE(at::equal(index.select(1, 0), vq::nearest_centroids(x, wd, c, 7).second)) << what;
        }
      }
    }
  }
}

TEST(KMeans, FusedCpuKernelsAgreeWithTheTensorFormulation) {
  // The tensor formulation is what other devices run; on CPU both must reach the same clustering.
  const int64_t k = 12, per = 80, d = 4;
  const at::Tensor centers = randn({k, d}, 13) * 5;
  const at::Tensor x = centers.repeat_interleave(per, 0) + randn({k * per, d}, 14) * 0.3;
  const at::Tensor w = rand({k * per, d}, 15) + 0.05;
  vq::KMeansParams p;
  p.k = k;
  p.seed = 3;
  p.chunk_rows = 100;
  const auto fused = vq::weighted_kmeans(x, w, p);
  p.fused_cpu = false;
  const auto tensor = vq::weighted_kmeans(x, w, p);
  EXPECT_TRUE(at::equal(fused.assignment, tensor.assignment));
  EXPECT_TRUE(at::allclose(fused.centroids, tensor.centroids, 1e-4, 1e-5));
  EXPECT_NEAR(fused.objective.back(), tensor.objective.back(), 1e-4 * tensor.objective.back());
  // Rows are independent in the fused kernels: one thread gives the same bits.
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  p.fused_cpu = true;
  const auto single = vq::weighted_kmeans(x, w, p);
  at::set_num_threads(threads);
  EXPECT_TRUE(at::equal(single.centroids, fused.centroids));
}

TEST(KMeans, EmptyClustersAreReseeded) {
  // 40 points on only 3 distinct values, k = 6: some clusters must empty and be re-seeded.
  const at::Tensor base = at::tensor({0.f, 0.f, 5.f, 5.f, 9.f, 0.f}).view({3, 2});
  const at::Tensor x = base.repeat({14, 1}).slice(0, 0, 40);
  vq::KMeansParams p;
  p.k = 6;
  p.iterations = 5;
  p.stop_when_stable = false;
  const auto r = vq::weighted_kmeans(x, at::Tensor(), p);
  EXPECT_EQ(r.centroids.size(0), 6);
  EXPECT_DOUBLE_EQ(r.objective.back(), 0.0);
  EXPECT_GT(r.empty_reseeds, 0);
}

class ConvexTest : public ::testing::Test {
 protected:
  void SetUp() override {
    weight = randn({32, 16}, 11);
    sub = vq::to_subvectors(weight, 4);
    importance = rand({sub.size(0), 4}, 12) + 0.1;
    vq::KMeansParams p;
    p.k = 16;
    p.iterations = 10;
    codebook = vq::weighted_kmeans(sub, importance, p).centroids;
  }
  at::Tensor weight, sub, importance, codebook;
};

TEST_F(ConvexTest, InitialHullIsTheNearestCodewords) {
  vq::ConvexQuantizer q(sub, importance, codebook, {});
  EXPECT_EQ(q.hull().size(1), 4);
  const at::Tensor d = vq::weighted_sq_distances(sub, importance, codebook);
  EXPECT_TRUE(at::equal(q.hull().select(1, 0), std::get<1>(d.min(1))));
  EXPECT_TRUE(at::allclose(q.ratios().sum(1), at::ones({sub.size(0)})));
}

TEST_F(ConvexTest, HullUpdateMovesSoftPointsByAtMostTheReplacedShare) {
  vq::ConvexQuantizer q(sub, importance, codebook, {});
  c10::NoGradGuard guard;
  for (int round = 0; round < 5; ++round) {
    // Move the soft points as training would: random logit and codebook changes.
    q.logits().add_(randn(q.logits().sizes().vec(), 20 + round) * 2);
    q.codebook().add_(randn(q.codebook().sizes().vec(), 30 + round) * 0.3);
    const at::Tensor before = q.soft_subvectors();
    const at::Tensor r = q.ratios();
    const at::Tensor hull_before = q.hull().clone();
    const auto stats = q.update_hull();
    const at::Tensor after = q.soft_subvectors();
    const at::Tensor changed = (q.hull() != hull_before);
    // At most one member per sub-vector changes; the point moves by exactly that member's share.
    EXPECT_TRUE((changed.sum(1) <= 1).all().item<bool>());
    const at::Tensor share = (r * changed.to(at::kFloat)).sum(1);
    const at::Tensor old_c = q.codebook().index_select(0, (hull_before * changed).sum(1));
    const at::Tensor new_c = q.codebook().index_select(0, (q.hull() * changed).sum(1));
    const at::Tensor bound = share * (new_c - old_c).norm(2, 1);
    EXPECT_TRUE(((after - before).norm(2, 1) <= bound + 1e-5).all().item<bool>());
    EXPECT_EQ(stats.replaced, changed.any(1).sum().item<int64_t>());
    // Hull members stay unique.
    const at::Tensor sorted = std::get<0>(q.hull().sort(1));
    EXPECT_FALSE((sorted.slice(1, 1) == sorted.slice(1, 0, -1)).any().item<bool>());
  }
}

TEST_F(ConvexTest, ConfirmationReachesExactFractionsAndSoftEqualsHardAtTheEnd) {
  vq::ConvexQuantizer q(sub, importance, codebook, {});
  const int64_t n = q.num_subvectors();
  for (double f : {0.5, 0.75, 0.9, 1.0}) {
    const auto stats = q.confirm_to_fraction(f);
    EXPECT_EQ(q.num_confirmed(), static_cast<int64_t>(std::ceil(f * n - 1e-9))) << f;
    EXPECT_GE(stats.truncation_error, 0.0);
  }
  EXPECT_TRUE(at::equal(q.soft_subvectors(), q.hard_subvectors()));
  EXPECT_FLOAT_EQ(q.ratio_regularizer().item<float>(), 0.f);  // nothing left unconfirmed
}

TEST_F(ConvexTest, ConfirmBySmallestErrorAndByThreshold) {
  vq::ConvexQuantizer q(sub, importance, codebook, {});
  {
    c10::NoGradGuard guard;
    q.logits().select(1, 0).slice(0, 0, 10).fill_(50.f);  // ten sub-vectors fully decided
  }
  EXPECT_EQ(q.confirm_above(0.99).confirmed_now, 10);
  const auto stats = q.confirm_to_fraction(0.5, vq::ConfirmOrder::kSmallestError);
  EXPECT_EQ(q.num_confirmed(), static_cast<int64_t>(std::ceil(0.5 * q.num_subvectors())));
  EXPECT_GT(stats.confirmed_now, 0);
  // Confirmed codes are the hull members of largest ratio at confirmation.
  EXPECT_TRUE(at::equal(q.codes().slice(0, 0, 10), q.hull().select(1, 0).slice(0, 0, 10)));
}

TEST_F(ConvexTest, GradientsReachLogitsAndCodebook) {
  vq::ConvexQuantizer q(sub, importance, codebook, {});
  q.confirm_to_fraction(0.25);
  const at::Tensor loss = (q.soft_subvectors() - sub).square().sum() + q.ratio_regularizer();
  loss.backward();
  EXPECT_GT(q.logits().grad().abs().sum().item<float>(), 0.f);
  EXPECT_GT(q.codebook().grad().abs().sum().item<float>(), 0.f);
  // Confirmed rows no longer depend on their logits.
  const at::Tensor confirmed_rows = q.confirmed().nonzero().squeeze(1);
  EXPECT_EQ(q.logits().grad().index_select(0, confirmed_rows).abs().sum().item<float>(), 0.f);
}

TEST(ConvexCombination, FusedCpuKernelAgreesWithTheTensorFormulation) {
  // The tensor formulation is what other devices run; on CPU the fused kernel must give the same
  // soft sub-vectors and gradients, with confirmed and free rows mixed. 9,000 rows: more than one
  // of the kernel's 4,096-row chunks.
  const at::Tensor sub = randn({9000, 4}, 23);
  const at::Tensor importance = rand({9000, 4}, 24) + 0.1;
  vq::KMeansParams kp;
  kp.k = 16;
  kp.iterations = 5;
  const at::Tensor codebook = vq::weighted_kmeans(sub, importance, kp).centroids;
  vq::ConvexParams tensor_params;
  tensor_params.fused_cpu = false;
  vq::ConvexQuantizer fused(sub, importance, codebook, {});
  vq::ConvexQuantizer tensor(sub, importance, codebook, tensor_params);
  {
    // Both start from the same hull and ratios (the first hull's distances are summed differently
    // on the two paths: term by term in the fused one), ratios away from one-hot.
    c10::NoGradGuard no_grad;
    tensor.hull().copy_(fused.hull());
    const at::Tensor start = fused.logits() + randn(fused.logits().sizes().vec(), 21);
    for (auto* q : {&fused, &tensor}) q->logits().copy_(start);
  }
  for (auto* q : {&fused, &tensor}) q->confirm_to_fraction(0.3);
  const at::Tensor target = randn(sub.sizes().vec(), 22);
  const at::Tensor soft = fused.soft_subvectors();
  EXPECT_TRUE(at::allclose(soft, tensor.soft_subvectors(), 1e-5, 1e-6));
  (fused.soft_subvectors() * target).sum().backward();
  (tensor.soft_subvectors() * target).sum().backward();
  EXPECT_TRUE(at::allclose(fused.logits().grad(), tensor.logits().grad(), 1e-4, 1e-5));
  EXPECT_TRUE(at::allclose(fused.codebook().grad(), tensor.codebook().grad(), 1e-4, 1e-5));
  EXPECT_GT(fused.codebook().grad().abs().sum().item<float>(), 0.f);
  // The codebook gradient sums fixed chunks in order: one thread gives the same bits.
  const at::Tensor grad = fused.codebook().grad().clone();
  fused.codebook().mutable_grad() = at::Tensor();
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  (fused.soft_subvectors() * target).sum().backward();
  at::set_num_threads(threads);
  EXPECT_TRUE(at::equal(fused.codebook().grad(), grad));
  // A frozen codebook (vq4dit before hardening) gets no gradient; the logits still do.
  fused.codebook().requires_grad_(false);
  fused.codebook().mutable_grad() = at::Tensor();
  fused.logits().mutable_grad() = at::Tensor();
  (fused.soft_subvectors() * target).sum().backward();
  EXPECT_TRUE(fused.logits().grad().defined());
  EXPECT_FALSE(fused.codebook().grad().defined());
}

TEST(Baselines, RtnMatchesItsClosedForm) {
  // Row 0: [0, 1, 2, 3] on 2 bits is exact. Row 1: [-1, -0.2, 0.4, 1] on 2 bits: scale = 2/3,
  // zero = round(1.5) = 2, q = clamp(round(w / scale) + 2, 0, 3) = [0, 2, 3, 3] (round half to
  // even: -1.5 -> -2, 1.5 -> 2, then clamped), w' = (q - 2) * scale.
  const at::Tensor w = at::tensor({0.f, 1.f, 2.f, 3.f, -1.f, -0.2f, 0.4f, 1.f}).view({2, 4});
  const at::Tensor q = vq::rtn_quantize(w, 2);
  EXPECT_TRUE(at::allclose(q[0], w[0]));
  const float scale = 2.f / 3.f;
  const std::vector<float> want = {(0 - 2) * scale, (2 - 2) * scale, (3 - 2) * scale, (3 - 2) * scale};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(q[1][i].item<float>(), want[i], 1e-6) << i;
  // Uniform data: every error is at most half a step.
  const at::Tensor u = rand({16, 256}, 13);
  const at::Tensor qu = vq::rtn_quantize(u, 3);
  const at::Tensor step = (std::get<0>(u.max(1, true)) - std::get<0>(u.min(1, true))) / 7;
  EXPECT_TRUE(((qu - u).abs() <= step / 2 + 1e-6).all().item<bool>());
  // A constant row stays exact.
  EXPECT_TRUE(at::equal(vq::rtn_quantize(at::full({1, 5}, 0.25f), 1), at::full({1, 5}, 0.25f)));
}

TEST(Baselines, KmeansQuantizeUsesNearestCodewords) {
  const at::Tensor w = randn({24, 8}, 14);
  vq::KMeansParams p;
  p.k = 8;
  const auto r = vq::kmeans_quantize(w, at::Tensor(), 4, p);
  EXPECT_EQ(r.weight.sizes(), w.sizes());
  const at::Tensor sub = vq::to_subvectors(w, 4);
  const at::Tensor d = vq::weighted_sq_distances(sub, at::Tensor(), r.codebook);
  EXPECT_TRUE(at::equal(r.codes, std::get<1>(d.min(1))));
}

TEST(Packing, RoundTripsEveryWidthOnOddLengths) {
  std::mt19937_64 rng(15);
  for (int bits = 1; bits <= 16; ++bits) {
    for (size_t count : {size_t{1}, size_t{7}, size_t{13}, size_t{1001}}) {
      std::vector<int64_t> codes(count);
      for (auto& c : codes) c = static_cast<int64_t>(rng() % (uint64_t{1} << bits));
      codes[0] = (int64_t{1} << bits) - 1;  // the largest code
      const auto packed = vq::pack_codes(codes, bits);
      ASSERT_EQ(packed.size(), (count * bits + 7) / 8);
      EXPECT_EQ(vq::unpack_codes(packed.data(), packed.size(), count, bits), codes) << bits << " " << count;
    }
  }
  EXPECT_THROW(vq::pack_codes({4}, 2), Error);
  EXPECT_THROW(vq::pack_codes({1}, 17), Error);
  const auto packed = vq::pack_codes({1, 2, 3}, 9);
  EXPECT_THROW(vq::unpack_codes(packed.data(), packed.size() - 1, 3, 9), Error);
}
