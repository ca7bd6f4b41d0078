// calib/ on the tiny committed model (vim_micro: 3 blocks, 3x32x32) with random images.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>

#include "test_util.h"
#include "vimvq/calib/block_calibrator.h"
#include "vimvq/calib/calibrate.h"
#include "vimvq/calib/end_to_end.h"
#include "vimvq/model/parameter_slot.h"
#include "vimvq/report/metrics.h"
#include "vimvq/report/quantize_report.h"

using namespace vimvq;

namespace {

model::VimModel micro() { return model::VimModel::load((test::data_dir() / "vim_micro.pt").string()); }

at::Tensor images(int64_t n) {
  at::Generator g = at::detail::createCPUGenerator(7);
  return at::randn({n, 3, 32, 32}, g, at::kFloat);
}

calib::CalibrationParams small_params(vq::Method method, int bits) {
  calib::CalibrationParams p;
  p.method = method;
  p.bits = bits;
  p.iterations = 24;
  p.batch_size = 8;
  p.hull_update_every = 4;
  p.kmeans_iterations = 20;
  p.e2e_steps = 0;  // the block-wise pass alone (vimvq's default adds the stage); EndToEnd sets it
  return p;
}

}  // namespace

TEST(Calibrate, LossFallsAndConfirmationsFollowTheSchedule) {
  auto m = micro();
  const auto p = small_params(vq::Method::kVimvq, 2);
  const auto r = calib::quantize_model(m, images(16), p, {});
  ASSERT_EQ(r.blocks.size(), 3u);
  const int main = calib::main_steps(calib::schedule_params(p));  // 22: stages of 5 steps
  for (const auto& b : r.blocks) {
    EXPECT_LT(b.loss_final, b.loss_init) << "block " << b.index;
    EXPECT_EQ(b.confirmed_fraction, 1.0);
    ASSERT_GE(b.confirmations.size(), p.stage_fractions.size());
    for (size_t s = 0; s < p.stage_fractions.size(); ++s) {
      EXPECT_EQ(b.confirmations[s].step, static_cast<int>(s + 1) * (main / 4)) << "block " << b.index;
      // Each stage confirms at least its fraction (confirm-above may have gone further).
      EXPECT_GE(b.confirmations[s].fraction, p.stage_fractions[s] - 1e-9) << "block " << b.index;
    }
  }
}

TEST(Calibrate, EveryMethodAndWidthProducesThePlannedRows) {
  auto m = micro();
  const at::Tensor x = images(8);
  for (vq::Method method : {vq::Method::kRtn, vq::Method::kKmeans, vq::Method::kVq4dit, vq::Method::kVimvq}) {
    for (int bits : {1, 2, 3}) {
      auto p = small_params(method, bits);
      p.iterations = 4;
      p.include = {"layers.1.*"};
      auto model = micro();
      const auto planned = calib::plan_layers(model, p);
      const auto done = calib::quantize_model(model, x, p, {}).layer_records;
      ASSERT_EQ(planned.size(), done.size());
      for (size_t i = 0; i < planned.size(); ++i) {
        EXPECT_EQ(planned[i].plan, done[i].plan) << vq::method_name(method) << bits << " " << planned[i].name;
        const std::string dry = report::layer_row(planned[i], 3), real = report::layer_row(done[i], 3);
        EXPECT_EQ(real.rfind(dry, 0), 0u) << "dry: " << dry << "\nreal: " << real;
        EXPECT_GT(real.size(), dry.size());
      }
    }
  }
}

TEST(Calibrate, FineTuneLeavesCodesAlone) {
  auto m = micro();
  auto p = small_params(vq::Method::kVimvq, 2);
  p.iterations = 20;
  p.finetune_fraction = 0.5;
  p.lr_codebook = 1e-2;  // large enough that the fine-tune visibly moves the codebook
  const at::Tensor x = images(16);
  for (at::Tensor param : m.module().parameters(true)) param.requires_grad_(false);  // as quantize_model does
  calib::Chain chain;
  at::Tensor target;
  {
    c10::NoGradGuard no_grad;
    std::tie(chain.hidden, chain.residual) = m.embed(x);
    target = m.block(0, chain.hidden, chain.residual).first;
  }
  std::vector<model::LayerInfo> block0;
  for (const auto& l : calib::select_layers(m, p)) {
    if (l.block == 0) block0.push_back(l);
  }
  calib::BlockCalibrator block(m, 0, block0, p, chain, target);
  std::vector<vq::QuantizedWeight> at_harden;
  std::vector<at::Tensor> books;
  int64_t steps = 0;
  at::Generator g = at::detail::createCPUGenerator(p.seed);
  block.train(g, [&](int64_t n) {
    steps += n;
    if (steps == 11) {  // one fine-tune step after the hardening (which follows the 10th step)
      for (const auto& q : block.quantizers()) {
        at_harden.push_back(q->finish("x"));
        books.push_back(q->codebook_tensors().front().detach().clone());
      }
    }
  });
  ASSERT_FALSE(at_harden.empty());
  int moved = 0;  // on this random micro model some layers' codebook gradients are ~1e-20: count
  for (size_t i = 0; i < at_harden.size(); ++i) {
    EXPECT_EQ(block.quantizers()[i]->finish("x").codes, at_harden[i].codes) << "layer " << i;
    const at::Tensor book = block.quantizers()[i]->codebook_tensors().front();
    moved += (book - books[i]).abs().max().item<double>() > 0;
  }
  EXPECT_GT(moved, 0) << "the fine-tune trained no codebook";
}

// warmup_images: the importances and the initial loss read rows spread over the set; the block
// holds the initial hard weights after construction, so the loss can be checked by hand.
TEST(Calibrate, WarmupImagesAreSpreadRowsOfTheSet) {
  auto m = micro();
  for (at::Tensor param : m.module().parameters(true)) param.requires_grad_(false);
  calib::Chain chain;
  at::Tensor target;
  {
    c10::NoGradGuard no_grad;
    std::tie(chain.hidden, chain.residual) = m.embed(images(16));
    target = m.block(0, chain.hidden, chain.residual).first.mul(0.5);  // a target the weights miss
  }
  auto p = small_params(vq::Method::kVimvq, 2);
  std::vector<model::LayerInfo> block0;
  for (const auto& l : calib::select_layers(m, p)) {
    if (l.block == 0) block0.push_back(l);
  }
  const auto loss_on = [&](const at::Tensor& rows) {
    c10::NoGradGuard no_grad;
    const at::Tensor out =
        m.block(0, chain.hidden.index_select(0, rows), chain.residual.index_select(0, rows)).first;
    return (out - target.index_select(0, rows)).square().mean().item<double>();
  };
  p.warmup_images = 4;
  const calib::BlockCalibrator four(m, 0, block0, p, chain, target);
  const double expected = loss_on(at::tensor(std::vector<int64_t>{0, 4, 8, 12}));
  EXPECT_NEAR(four.record().loss_init, expected, 1e-6 * expected);
  p.warmup_images = 0;
  const calib::BlockCalibrator all(m, 0, block0, p, chain, target);
  EXPECT_NEAR(all.record().loss_init, loss_on(at::arange(16, at::kLong)), 1e-6 * all.record().loss_init);
  p.warmup_images = 16;  // as many as the set: the same as all
  const calib::BlockCalibrator sixteen(m, 0, block0, p, chain, target);
  EXPECT_EQ(sixteen.record().loss_init, all.record().loss_init);
  // Fewer rows, other importances: the k-means codebooks differ.
  EXPECT_FALSE(four.quantizers()[0]->codebook_tensors().front().equal(
      all.quantizers()[0]->codebook_tensors().front()));
}

// Early stopping: a plateaued stage skips to its last epoch, which still ends with its
// confirmation; off, every block runs every step. The loss curve has one entry per epoch run.
TEST(Calibrate, EarlyStoppingCutsStagesAndKeepsTheirConfirmations) {
  auto p = small_params(vq::Method::kVimvq, 2);
  p.iterations = 80;  // 72 main steps in stages of 18, 8 fine-tune; 16 images, so epochs of 2 steps
  const at::Tensor x = images(16);
  auto full_model = micro();
  const auto full = calib::quantize_model(full_model, x, p, {});
  p.early_stop_tolerance = 0.5;  // any epoch less than 50 % better than the stage's best is stale
  p.early_stop_patience = 1;
  auto cut_model = micro();
  const auto cut = calib::quantize_model(cut_model, x, p, {});
  ASSERT_EQ(cut.blocks.size(), 3u);
  for (size_t i = 0; i < cut.blocks.size(); ++i) {
    const auto &a = full.blocks[i], &b = cut.blocks[i];
    EXPECT_EQ(a.steps, 80);
    EXPECT_EQ(a.epoch_losses.size(), 40u);
    EXPECT_LT(b.steps, 40) << "block " << i;
    EXPECT_EQ(b.epoch_losses.size(), static_cast<size_t>(b.steps / 2));
    EXPECT_EQ(b.confirmed_fraction, 1.0);
    ASSERT_GE(b.confirmations.size(), 4u);
    for (size_t s = 0; s < 4; ++s) EXPECT_EQ(b.confirmations[s].step, a.confirmations[s].step);
    EXPECT_LT(b.loss_final, b.loss_init) << "block " << i;
  }
}

// --profile: every block's warm-up holds the phases before its first step, every step is counted,
// and the plain reference step was timed.
TEST(Calibrate, ProfileAccountsForTheWarmUpAndEveryStep) {
  auto m = micro();
  const auto p = small_params(vq::Method::kVimvq, 2);
  calib::Profiler profiler(c10::Device(c10::kCPU), /*reference_steps=*/2);
  calib::quantize_model(m, images(16), p, {}, &profiler);
  const calib::Profile& prof = profiler.profile();
  ASSERT_EQ(prof.blocks.size(), 3u);
  EXPECT_GT(prof.embed_seconds, 0);
  for (const auto& b : prof.blocks) {
    const auto s = [&](calib::Phase ph) { return b.seconds[static_cast<int>(ph)]; };
    for (calib::Phase ph : {calib::Phase::kTargets, calib::Phase::kImportances, calib::Phase::kCodebooks,
                            calib::Phase::kInitialLoss, calib::Phase::kForward, calib::Phase::kBackward})
      EXPECT_GT(s(ph), 0) << "block " << b.block << ", " << calib::phase_name(ph);
    EXPECT_GE(b.warmup_seconds, s(calib::Phase::kImportances) + s(calib::Phase::kCodebooks) +
                                    s(calib::Phase::kInitialLoss) + b.first_step_seconds);
    EXPECT_EQ(b.steps, p.iterations);
    EXPECT_EQ(b.reference_steps, 2);
    EXPECT_GT(b.reference_step_seconds, 0);
  }
}

// The end-to-end stage's step back-propagates block by block; its loss and its gradients must be
// those of one graph through the whole model.
TEST(EndToEnd, BlockByBlockBackwardEqualsTheWholeModelGraph) {
  auto m = micro();
  for (at::Tensor param : m.module().parameters(true)) param.requires_grad_(false);  // as quantize_model does
  const at::Tensor x = images(6);
  at::Generator g = at::detail::createCPUGenerator(11);
  const at::Tensor teacher = at::randn({6, m.metadata().num_classes}, g, at::kFloat).mul_(3);
  // Trained weights in blocks 1 and 2 only, each a function of a leaf as the stage's codebooks are.
  std::vector<std::pair<model::ParameterSlot, at::Tensor>> trained;
  for (const auto& l : m.quantizable_layers()) {
    if (l.block == 0) continue;
    model::ParameterSlot slot(m.module(), l.name);
    const at::Tensor weight = slot.owner().attr(l.name.substr(l.name.rfind('.') + 1)).toTensor();
    trained.push_back({slot, weight.detach().clone().requires_grad_(true)});
  }
  ASSERT_FALSE(trained.empty());
  const auto set_weights = [&] {
    for (auto& [slot, leaf] : trained) {
      if (leaf.grad().defined()) leaf.mutable_grad().zero_();
      slot.set(leaf.mul(1.0));
    }
  };
  set_weights();
  const at::Tensor log_p = at::log_softmax(teacher, -1);
  const at::Tensor whole = (log_p.exp() * (log_p - at::log_softmax(m.forward(x), -1))).sum(-1).mean();
  whole.backward();
  std::vector<at::Tensor> expected;
  for (auto& t : trained) expected.push_back(t.second.grad().clone());
  set_weights();
  const double by_blocks = calib::kl_backward_by_blocks(m, x, teacher, 1);
  EXPECT_NEAR(by_blocks, whole.item<double>(), 1e-6 * std::abs(whole.item<double>()));
  for (size_t i = 0; i < trained.size(); ++i) {
    const double scale = expected[i].abs().max().item<double>();
    ASSERT_GT(scale, 0) << i;
    EXPECT_LE((trained[i].second.grad() - expected[i]).abs().max().item<double>(), 1e-4 * scale) << i;
  }
}

// The stage's KL report is the measure `vimvq eval --reference` takes (in double precision): in
// fp32 a KL near zero came out negative on Vim-T.
TEST(EndToEnd, ReportsTheKlThatEvalMeasures) {
  auto m = micro();
  const at::Tensor x = images(12);
  at::Tensor teacher;
  {
    c10::NoGradGuard no_grad;
    teacher = m.forward(x);
  }
  auto p = small_params(vq::Method::kKmeans, 2);
  p.batch_size = 12;  // one slice, so the two forwards below are the same computation
  p.e2e_steps = 3;
  const auto r = calib::quantize_model(m, x, p, {});
  report::AgreementMetrics eval;
  {
    c10::NoGradGuard no_grad;
    eval.add(m.forward(x), teacher);
  }
  ASSERT_GT(eval.mean_kl(), 0);
  ASSERT_TRUE(r.end_to_end.has_value());
  EXPECT_NEAR(r.end_to_end->kl_after, eval.mean_kl(), 1e-12 * eval.mean_kl());
}

// e2e_extra_images: the stage trains on more images than the block-wise pass (the CLI loads
// them). The block-wise pass and so the codes stay as without them; the codebooks move
// differently, and the stage's KL report covers both sets.
TEST(EndToEnd, TrainsOnTheExtraImagesBesideTheCalibrationImages) {
  const at::Tensor x = images(12);
  const at::Tensor calibration = x.slice(0, 0, 8), extra = x.slice(0, 8, 12);
  at::Tensor teacher;
  {
    auto fp = micro();
    c10::NoGradGuard no_grad;
    teacher = at::cat({fp.forward(calibration), fp.forward(extra)});  // as the stage takes its targets
  }
  auto p = small_params(vq::Method::kKmeans, 2);
  p.batch_size = 12;  // the report's KL in one slice, as the check below computes it
  p.e2e_steps = 3;
  p.e2e_lr = 1e-2;
  auto with = micro(), without = micro();
  const auto r = calib::quantize_model(with, calibration, p, {}, nullptr, nullptr, extra);
  const auto base = calib::quantize_model(without, calibration, p, {});
  ASSERT_TRUE(r.end_to_end.has_value() && base.end_to_end.has_value());
  EXPECT_EQ(r.end_to_end->images, 12);
  EXPECT_EQ(base.end_to_end->images, 8);
  report::AgreementMetrics eval, calibration_only;
  {
    c10::NoGradGuard no_grad;
    const at::Tensor logits = with.forward(x);
    eval.add(logits, teacher);
    calibration_only.add(logits.slice(0, 0, 8), teacher.slice(0, 0, 8));
  }
  // Both sets (summation order aside), which the calibration images alone do not give.
  EXPECT_NEAR(r.end_to_end->kl_after, eval.mean_kl(), 1e-9 * eval.mean_kl());
  EXPECT_GT(std::abs(calibration_only.mean_kl() - eval.mean_kl()), 1e-3 * eval.mean_kl());
  ASSERT_EQ(r.layers.size(), base.layers.size());
  bool codebooks_differ = false;
  for (size_t i = 0; i < r.layers.size(); ++i) {
    EXPECT_EQ(r.layers[i].codes, base.layers[i].codes) << r.layers[i].name;
    codebooks_differ = codebooks_differ || !at::equal(r.layers[i].codebook, base.layers[i].codebook);
  }
  EXPECT_TRUE(codebooks_differ);
}

// e2e_rest: the stage also tunes the 1-D parameters (norms, biases, D) of the blocks from the
// first quantized one on, in the model; every other unquantized parameter, and every code, stays.
TEST(EndToEnd, RestTunesTheQuantizedBlocksNormsAndBiasesOnly) {
  const at::Tensor x = images(12);
  auto p = small_params(vq::Method::kKmeans, 2);
  p.batch_size = 12;                         // the report's KL in one slice, as the check below computes it
  p.include = {"layers.1.*", "layers.2.*"};  // block 0 holds nothing to tune
  p.e2e_steps = 3;
  p.e2e_lr = 1e-2;
  auto original = micro(), without = micro();
  const auto base = calib::quantize_model(without, x, p, {});
  p.e2e_rest = true;
  auto with = micro();
  const auto r = calib::quantize_model(with, x, p, {});
  ASSERT_TRUE(r.end_to_end.has_value() && base.end_to_end.has_value());
  EXPECT_EQ(base.end_to_end->rest_values, 0);

  std::map<std::string, at::Tensor> before;
  for (const auto& pr : original.module().named_parameters(true)) before.emplace(pr.name, pr.value);
  std::set<std::string> quantized;
  for (const auto& l : r.layers) quantized.insert(l.name);
  int64_t tuned = 0;
  for (const auto& pr : with.module().named_parameters(true)) {
    if (quantized.count(pr.name)) continue;
    EXPECT_FALSE(pr.value.requires_grad()) << pr.name;
    const bool rest =
        pr.value.dim() == 1 && pr.name.rfind("layers.", 0) == 0 && pr.name.rfind("layers.0.", 0) != 0;
    if (rest) {
      tuned += pr.value.numel();
      // The random micro model's dt biases get gradients near 1e-13, below Adam's epsilon: the
      // norms are what must move.
      if (pr.name.find("norm") != std::string::npos) {
        EXPECT_FALSE(at::equal(pr.value, before.at(pr.name))) << pr.name;
      }
    } else {
      EXPECT_TRUE(at::equal(pr.value, before.at(pr.name))) << pr.name;
    }
  }
  EXPECT_GT(tuned, 0);
  EXPECT_EQ(r.end_to_end->rest_values, tuned);
  ASSERT_EQ(r.layers.size(), base.layers.size());
  for (size_t i = 0; i < r.layers.size(); ++i) EXPECT_EQ(r.layers[i].codes, base.layers[i].codes);
  // The KL reported is the model's as it now stands, tuned rest included.
  report::AgreementMetrics eval;
  {
    c10::NoGradGuard no_grad;
    eval.add(with.forward(x), original.forward(x));
  }
  EXPECT_NEAR(r.end_to_end->kl_after, eval.mean_kl(), 1e-9 * eval.mean_kl());
}
