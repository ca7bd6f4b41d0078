// --target-bpw's allocator on made-up layers (what it chooses) and on vim_micro (what it measures).
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <random>
#include <set>
#include <utility>

#include "test_util.h"
#include "vimvq/calib/allocation.h"
#include "vimvq/calib/calibrate.h"
#include "vimvq/calib/fisher.h"
#include "vimvq/model/parameter_slot.h"
#include "vimvq/util/error.h"

using namespace vimvq;

namespace {

// A layer of `numel` weights whose widths 1..4 cost exactly bits x numel (no tables: k = 0 leaves
// the codebook term out), with the given output errors.
calib::LayerOptions layer(const std::string& name, int64_t numel, std::vector<double> errors) {
  calib::LayerOptions l{name, {}};
  for (size_t i = 0; i < errors.size(); ++i) {
    calib::WidthOption w;
    w.bits = static_cast<int>(i) + 1;
    w.plan.numel = numel;
    w.plan.d = 1;
    w.plan.k = 0;
    w.plan.code_bits = w.bits;
    w.loss_increase = errors[i];
    l.widths.push_back(w);
  }
  return l;
}

}  // namespace

TEST(Allocation, SpendsBitsWhereTheErrorFallsMostAndLandsWithinOnePercentBelow) {
  // Same size; layer "a" loses far more error per bit than "b".
  const std::vector<calib::LayerOptions> layers = {layer("a", 1000, {100, 10, 5, 4}),
                                                   layer("b", 1000, {1, 0.5, 0.4, 0.3})};
  const auto a = calib::allocate_widths(layers, 2.5);
  EXPECT_EQ(a.weights, 2000);
  EXPECT_LE(a.bpw(), 2.5);
  EXPECT_GE(a.bpw(), 0.99 * 2.5);
  EXPECT_GT(a.bits.at("a"), a.bits.at("b"));
  // Every exact total is honoured, whatever the target, over random layers.
  std::mt19937 rng(3);
  std::vector<calib::LayerOptions> many;
  for (int i = 0; i < 40; ++i) {
    const int64_t numel = 64 + static_cast<int64_t>(rng() % 5000);
    double e = 1 + rng() % 1000;
    std::vector<double> errors;
    for (int b = 0; b < 4; ++b) errors.push_back(e /= 1.5 + (rng() % 100) / 50.0);
    many.push_back(layer("l" + std::to_string(i), numel, errors));
  }
  for (double target : {1.0, 1.3, 2.0, 2.77, 3.5}) {
    const auto r = calib::allocate_widths(many, target);
    int64_t bits = 0;
    for (const auto& l : many)
      for (const auto& w : l.widths)
        if (w.bits == r.bits.at(l.name)) bits += w.stored_bits();
    EXPECT_EQ(bits, r.stored_bits) << target;
    EXPECT_LE(r.bpw(), target) << target;
    EXPECT_GE(r.bpw(), 0.99 * target) << target;
  }
}

TEST(Allocation, RefusesTargetsOutOfReach) {
  const std::vector<calib::LayerOptions> layers = {layer("a", 1000, {4, 3, 2, 1})};
  EXPECT_NE(test::refusal([&] { calib::allocate_widths(layers, 0.5); }).find("below what these layers"),
            std::string::npos);
  EXPECT_NE(test::refusal([&] { calib::allocate_widths(layers, 9); }).find("above what these layers"),
            std::string::npos);
  // One layer of 10 weights: 2 bits is 20 bits, 3 bits 30; 2.9 can only be met 31 % below.
  const std::vector<calib::LayerOptions> coarse = {layer("a", 10, {4, 3, 2, 1})};
  EXPECT_NE(test::refusal([&] { calib::allocate_widths(coarse, 2.9); }).find("more than 1 % below"),
            std::string::npos);
  EXPECT_NEAR(calib::allocate_widths(coarse, 3.0).bpw(), 3.0, 1e-12);
}

TEST(Allocation, MeasuresEveryWidthOfEveryLayerOnTheModel) {
  auto model = model::VimModel::load((vimvq::test::data_dir() / "vim_micro.pt").string());
  calib::CalibrationParams p;
  p.method = vq::Method::kKmeans;
  const auto planned = calib::plan_layers(model, p);
  const at::Tensor images = at::randn({4, 3, 32, 32}, at::TensorOptions().dtype(at::kFloat));
  const auto options = calib::measure_width_options(model, images, p, planned, 4);
  ASSERT_EQ(options.size(), planned.size());
  for (size_t i = 0; i < options.size(); ++i) {
    EXPECT_EQ(options[i].name, planned[i].name);
    // Every width, and beside it every smaller codebook that gives a new (d, k).
    std::set<std::pair<int, int64_t>> shapes;
    for (const auto& w : options[i].widths) {
      EXPECT_TRUE(shapes.emplace(w.plan.d, w.plan.k).second) << options[i].name;
      EXPECT_EQ(w.plan, vq::plan_layer(p.method, w.bits, planned[i].shape, w.max_codewords));
      if (w.max_codewords != 0) {
        EXPECT_EQ(w.plan.k, std::min(w.max_codewords, vq::plan_layer(p.method, w.bits, planned[i].shape).k));
        EXPECT_LT(w.plan.k, vq::plan_layer(p.method, w.bits, planned[i].shape).k);
      }
    }
    EXPECT_GE(options[i].widths.size(), 4u);
    for (size_t j = 0; j + 1 < options[i].widths.size(); ++j)
      EXPECT_LE(options[i].widths[j].stored_bits(), options[i].widths[j + 1].stored_bits())
          << options[i].name;
    // Wider codes fit the weight better: the widest's output error is below the narrowest's.
    EXPECT_LT(options[i].widths.back().loss_increase, options[i].widths.front().loss_increase)
        << options[i].name;
    EXPECT_GE(options[i].widths.back().loss_increase, 0);
  }
  // The allocation then plans each layer at its width.
  const auto a = calib::allocate_widths(options, 1.5);  // vim_micro: 0.482 to 7.095 bits per weight
  p.layer_bits = a.bits;
  p.layer_codewords = a.max_codewords;
  EXPECT_FALSE(a.max_codewords.empty());  // without smaller codebooks vim_micro's least is 3.792
  const auto replanned = calib::plan_layers(model, p);
  int64_t bits = 0, weights = 0;
  for (const auto& l : replanned) {
    EXPECT_EQ(l.bits, a.bits.at(l.name));
    EXPECT_EQ(l.plan, vq::plan_layer(p.method, l.bits, l.shape, calib::codewords_of(p, l.name)));
    bits += l.plan.index_bits() + l.plan.codebook_bits();
    weights += l.plan.numel;
  }
  EXPECT_EQ(bits, a.stored_bits);
  EXPECT_EQ(weights, a.weights);
}

TEST(Allocation, FisherIsRepeatableNonNegativeAndLeavesTheModelAsItWas) {
  auto model = model::VimModel::load((vimvq::test::data_dir() / "vim_micro.pt").string());
  const std::vector<std::string> names = {"layers.0.mixer.in_proj.weight", "layers.2.mixer.out_proj.weight"};
  std::map<std::string, at::Tensor> before;
  for (const auto& pr : model.module().named_parameters(true)) before.emplace(pr.name, pr.value.clone());
  const at::Tensor images = at::randn({3, 3, 32, 32}, at::TensorOptions().dtype(at::kFloat));
  const auto f = calib::weight_fisher(model, images, names, 4);
  const auto again = calib::weight_fisher(model, images, names, 4);
  for (const auto& name : names) {
    EXPECT_EQ(f.at(name).sizes(), before.at(name).sizes()) << name;
    EXPECT_GE(f.at(name).min().item<double>(), 0) << name;
    EXPECT_GT(f.at(name).sum().item<double>(), 0) << name;
    EXPECT_TRUE(at::equal(f.at(name), again.at(name))) << name;
  }
  for (const auto& pr : model.module().named_parameters(true)) {
    EXPECT_TRUE(at::equal(pr.value, before.at(pr.name))) << pr.name;
    EXPECT_FALSE(pr.value.requires_grad() && !before.at(pr.name).requires_grad()) << pr.name;
  }
}

// Over every class, the Fisher is the Gauss-Newton form of the logits' Jacobian J:
// F = mean over images of sum_c p_c (J_c - sum_k p_k J_k)^2, here computed from the logits'
// gradients instead of the log-probabilities'. Fewer labels cover less of the expectation.
TEST(Allocation, FisherOverEveryLabelIsTheExpectationOverTheModelsPrediction) {
  auto model = model::VimModel::load((vimvq::test::data_dir() / "vim_micro.pt").string());
  const std::string name = "layers.1.mixer.out_proj.weight";
  at::Generator g = at::detail::createCPUGenerator(3);
  const at::Tensor images = at::randn({2, 3, 32, 32}, g, at::kFloat);
  const int64_t classes = model.metadata().num_classes;
  const at::Tensor f = calib::weight_fisher(model, images, {name}, classes).at(name).to(at::kDouble);
  const at::Tensor top1 = calib::weight_fisher(model, images, {name}, 1).at(name).to(at::kDouble);

  model::ParameterSlot slot(model.module(), name);
  const at::Tensor original = slot.owner().attr("weight").toTensor();
  const at::Tensor leaf = original.detach().clone().requires_grad_(true);
  slot.set(leaf);
  at::Tensor expected = at::zeros_like(f);
  {
    c10::AutoGradMode grad(true);
    for (int64_t i = 0; i < images.size(0); ++i) {
      const at::Tensor z = model.forward(images.slice(0, i, i + 1))[0];
      const at::Tensor p = at::softmax(z.detach().to(at::kDouble), -1);
      std::vector<at::Tensor> jacobian;
      for (int64_t c = 0; c < classes; ++c)
        jacobian.push_back(torch::autograd::grad({z[c]}, {leaf}, {}, true)[0].to(at::kDouble));
      const at::Tensor j = at::stack(jacobian);  // (C, rows, cols)
      const at::Tensor centred = j - (p.view({-1, 1, 1}) * j).sum(0, true);
      expected += (p.view({-1, 1, 1}) * centred.square()).sum(0);
    }
  }
  slot.set(original);
  expected /= static_cast<double>(images.size(0));
  const double scale = expected.abs().max().item<double>();
  ASSERT_GT(scale, 0);
  EXPECT_LE((f - expected).abs().max().item<double>(), 1e-4 * scale);
  EXPECT_TRUE((top1 <= f * (1 + 1e-6) + 1e-30).all().item<bool>());
  EXPECT_LT(top1.sum().item<double>(), f.sum().item<double>());
}
