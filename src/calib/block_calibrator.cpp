#include "vimvq/calib/block_calibrator.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <torch/optim/adam.h>

#include "src/calib/batch_order.h"
#include "src/calib/chain_ops.h"
#include "vimvq/calib/matmul_precision.h"
#include "vimvq/calib/plateau.h"
#include "vimvq/vq/subvectors.h"

namespace vimvq::calib {
namespace {

// Confirmation-time losses use a fixed subset: they are reports, not part of the optimisation.
constexpr int64_t kConfirmationLossRows = 64;

// Sums the steps' task losses where they were computed (no device sync per step) and reads the
// mean once per epoch.
class EpochLosses {
 public:
  explicit EpochLosses(int64_t steps_per_epoch) : steps_per_epoch_(steps_per_epoch) {}
  void add(const at::Tensor& loss) {
    sum_ = sum_.defined() ? sum_ + loss : loss;
    ++steps_;
  }
  bool full() const { return steps_ == steps_per_epoch_; }
  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  double take_mean() {
    const double mean = sum_.item<double>() / static_cast<double>(steps_);
    sum_ = at::Tensor();
    steps_ = 0;
    return mean;
  }

 private:
  int64_t steps_per_epoch_, steps_ = 0;
  at::Tensor sum_;
};

}  // namespace

// Stage confirmations always get a record with the block loss around them; the final hardening
// gets one when it has anything left to confirm.
bool BlockCalibrator::reported(const vq::Event& e) const {
  return e.kind == vq::EventKind::kConfirmToFraction ||
         (e.kind == vq::EventKind::kHardenAll && confirmed_share() < 1.0);
}

ScheduleParams schedule_params(const CalibrationParams& p) {
  ScheduleParams s;
  s.rules = p.method == vq::Method::kVq4dit ? ScheduleRules::kVq4dit : ScheduleRules::kVimvq;
  s.iterations = p.iterations;
  s.finetune_fraction = p.finetune_fraction;
  s.stage_fractions = p.stage_fractions;
  s.hull_update_every = p.hull_update_every;
  s.hull_update = p.hull_update;
  s.incremental = p.incremental;
  s.confirm_threshold = p.confirm_threshold;
  return s;
}

vq::LayerQuantizerOptions layer_quantizer_options(const CalibrationParams& p, int block, size_t layer,
                                                  const std::string& name) {
  vq::LayerQuantizerOptions o;
  o.method = p.method;
  o.bits = bits_of(p, name);
  o.max_codewords = codewords_of(p, name);
  o.kmeans_iterations = p.kmeans_iterations;
  o.kmeans_max_points_per_centroid = p.kmeans_max_points_per_centroid;
  // Seeds differ per layer and block, and stay put when other blocks are included or not.
  o.kmeans_seed = p.seed + static_cast<uint64_t>(layer) * 7919 + static_cast<uint64_t>(block) * 104729;
  o.hull_size = p.hull_size;
  o.confirm_order = p.confirm_order;
  o.vq4dit_harden_fraction = p.vq4dit_harden_fraction;
  return o;
}

BlockCalibrator::BlockCalibrator(model::VimModel& model, int block, std::vector<model::LayerInfo> layers,
                                 const CalibrationParams& params, Chain quantized_in, at::Tensor target,
                                 Profiler* profiler)
    : model_(model),
      block_(block),
      layers_(std::move(layers)),
      params_(params),
      schedule_(schedule_params(params)),
      in_(std::move(quantized_in)),
      target_(std::move(target)),
      profiler_(profiler),
      start_(std::chrono::steady_clock::now()) {
  record_.index = block;
  // The importances and the initial loss read `warmup_images` rows of the set (all by default).
  Chain warm = in_;
  at::Tensor warm_target = target_;
  const int64_t n = in_.hidden.size(0);
  if (params_.warmup_images > 0 && params_.warmup_images < n) {
    const at::Tensor rows = spread_rows(n, params_.warmup_images, in_.hidden.device());
    warm = {in_.hidden.index_select(0, rows), in_.residual.index_select(0, rows)};
    warm_target = target_.index_select(0, rows);
  }
  std::map<std::string, at::Tensor> importances;
  {
    ScopedPhase t(profiler_, block_, Phase::kImportances);
    importances = channel_importances(warm);
  }
  {
    ScopedPhase t(profiler_, block_, Phase::kCodebooks);
    make_quantizers(importances);
    set_weights(/*hard=*/true);
  }
  ScopedPhase t(profiler_, block_, Phase::kInitialLoss);
  record_.loss_init = block_loss(model_, block_, warm, warm_target, warm.hidden.size(0), params_.batch_size);
}

void BlockCalibrator::make_quantizers(const std::map<std::string, at::Tensor>& importances) {
  std::map<std::string, at::Tensor> block_params;
  for (const auto& pr : model_.block_module(block_).named_parameters(true))
    block_params.emplace(pr.name, pr.value);
  for (const auto& info : layers_) {
    weights_.push_back(block_params.at(info.local_name).detach().clone().to(at::kFloat));
    slots_.emplace_back(model_.block_module(block_), info.local_name);
    const auto h = importances.find(info.local_name);
    quantizers_.push_back(
        vq::make_layer_quantizer(weights_.back(), h == importances.end() ? at::Tensor() : h->second,
                                 layer_quantizer_options(params_, block_, quantizers_.size(), info.name)));
  }
}

BlockCalibrator::~BlockCalibrator() = default;

// h_c = mean x_c^2 of each layer's inputs on the quantized chain (docs/METHOD.md section 2).
std::map<std::string, at::Tensor> BlockCalibrator::channel_importances(const Chain& in) {
  std::map<std::string, at::Tensor> sum_sq;
  if (params_.importance != Importance::kDiag || params_.method == vq::Method::kRtn) return sum_sq;
  c10::NoGradGuard no_grad;
  const int64_t n = in.hidden.size(0);
  int64_t rows = 0;
  for (int64_t s = 0; s < n; s += params_.batch_size) {
    const int64_t e = std::min<int64_t>(n, s + params_.batch_size);
    for (auto& [name, x] :
         model_.layer_inputs(block_, in.hidden.slice(0, s, e), in.residual.slice(0, s, e))) {
      const at::Tensor part = vq::channel_square_sums(x);
      sum_sq[name] = sum_sq.count(name) ? sum_sq[name] + part : part;
      if (name == layers_.front().local_name) rows += x.numel() / x.size(-1);
    }
  }
  for (auto& [name, s] : sum_sq) s = (s / std::max<int64_t>(rows, 1)).to(at::kFloat);
  return sum_sq;
}

void BlockCalibrator::set_weights(bool hard) {
  for (size_t i = 0; i < quantizers_.size(); ++i)
    slots_[i].set(hard ? quantizers_[i]->hard_weight() : quantizers_[i]->weight());
}

double BlockCalibrator::confirmed_share() const {
  int64_t confirmed = 0, total = 0;
  for (const auto& q : quantizers_) {
    const vq::LayerProgress p = q->progress();
    confirmed += p.confirmed;
    total += p.total;
  }
  return total ? static_cast<double>(confirmed) / total : 1.0;
}

void BlockCalibrator::train(at::Generator& generator, const std::function<void(int64_t)>& advance) {
  if (!vq::is_calibrated(params_.method)) return;
  std::vector<at::Tensor> ratios, books;
  for (auto& q : quantizers_) {
    for (auto& t : q->ratio_tensors()) ratios.push_back(t);
    for (auto& t : q->codebook_tensors()) books.push_back(t);
  }
  ratio_optimiser_ =
      std::make_unique<torch::optim::Adam>(ratios, torch::optim::AdamOptions(params_.lr_logits));
  codebook_optimiser_ =
      std::make_unique<torch::optim::Adam>(books, torch::optim::AdamOptions(params_.lr_codebook));
  const int64_t n = in_.hidden.size(0);
  BatchOrder batches(n, params_.batch_size, generator, in_.hidden.device());
  EpochLosses epoch(std::max<int64_t>(1, n / params_.batch_size));
  PlateauDetector plateau(params_.early_stop_tolerance, params_.early_stop_patience);
  StageSpan stage = stage_span(0, schedule_);
  int epoch_begin = 0;  // the step the current epoch began at
  for (int s = 0; s < params_.iterations;) {
    const auto step_start = std::chrono::steady_clock::now();
    const StepPlan plan = plan_step(s, schedule_);
    epoch.add(step(plan, batches.next()));
    ++record_.steps;
    if (profiler_ && s == 0) note_warmup(step_start);
    for (const auto& e : plan.after) apply(s + 1, e);
    int next = s + 1;
    if (epoch.full()) {
      record_.epoch_losses.push_back(epoch.take_mean());
      if (epoch_begin >= stage.begin && plateau.add(record_.epoch_losses.back()))
        next = skip_plateau(s, static_cast<int>(epoch.steps_per_epoch()));
      epoch_begin = next;
    }
    if (advance) advance(next - s);
    if (next >= stage.end) {
      stage = stage_span(next, schedule_);
      plateau.reset();
    }
    s = next;
  }
  if (!profiler_) return;
  profiler_->block(block_).steps = record_.steps;
  time_reference_steps(profiler_->reference_steps());
}

void BlockCalibrator::note_warmup(std::chrono::steady_clock::time_point first_step_start) {
  BlockProfile& bp = profiler_->block(block_);
  const auto now = std::chrono::steady_clock::now();
  bp.first_step_seconds = std::chrono::duration<double>(now - first_step_start).count();
  bp.warmup_seconds = std::chrono::duration<double>(now - start_).count();
}

// The stage's loss plateaued after `step`: the steps up to its last `tail` are skipped, and their
// periodic events applied once.
int BlockCalibrator::skip_plateau(int step, int tail) {
  const int next = step_after_plateau(step, tail, schedule_);
  for (const auto& e : periodic_events(step + 1, next, schedule_)) apply(next, e);
  return next;
}

// A plain forward+backward of the block with its original weights as leaves: what a step costs
// without the quantizer, on the same rows. Changes nothing the calibration keeps.
void BlockCalibrator::time_reference_steps(int steps) {
  std::vector<at::Tensor> leaves;
  for (size_t i = 0; i < slots_.size(); ++i) {
    leaves.push_back(weights_[i].detach().clone().requires_grad_(true));
    slots_[i].set(leaves.back());
  }
  const int64_t n = in_.hidden.size(0);
  const int64_t rows = std::min<int64_t>(n, params_.batch_size);
  double total = 0;
  for (int s = 0; s <= steps; ++s) {  // step 0 is warm-up, not counted
    const int64_t start = (s * rows) % std::max<int64_t>(1, n - rows + 1);
    profiler_->synchronize();
    const auto t0 = std::chrono::steady_clock::now();
    const ScopedMatmulPrecision precision(params_.step_matmuls);  // like the steps: forward and backward
    const at::Tensor out = model_
                               .block(block_, in_.hidden.slice(0, start, start + rows),
                                      in_.residual.slice(0, start, start + rows))
                               .first;
    (out - target_.slice(0, start, start + rows)).square().mean().backward();
    for (auto& l : leaves) l.mutable_grad() = at::Tensor();
    profiler_->synchronize();
    if (s > 0) total += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  BlockProfile& bp = profiler_->block(block_);
  bp.reference_steps = steps;
  bp.reference_step_seconds = steps > 0 ? total / steps : 0;
}

at::Tensor BlockCalibrator::step(const StepPlan& plan, const at::Tensor& batch) {
  {
    ScopedPhase t(profiler_, block_, Phase::kSoftWeights);
    set_weights(/*hard=*/false);
  }
  at::Tensor loss, task_loss;
  // The block's products in the step's precision, in the forward and in the backward; the soft
  // weights and the optimiser have none.
  const ScopedMatmulPrecision precision(params_.step_matmuls);
  {
    ScopedPhase t(profiler_, block_, Phase::kForward);
    const at::Tensor out =
        model_.block(block_, in_.hidden.index_select(0, batch), in_.residual.index_select(0, batch)).first;
    loss = (out - target_.index_select(0, batch)).square().mean();
    task_loss = loss.detach();
    if (plan.train_ratios && params_.regularizer > 0) {
      const double lambda = params_.regularizer * record_.loss_init * plan.ramp_step / plan.ramp_length;
      for (const auto& q : quantizers_) {
        const at::Tensor r = q->ratio_regularizer();
        if (r.defined()) loss = loss + lambda * r;
      }
    }
  }
  {
    ScopedPhase t(profiler_, block_, Phase::kBackward);
    ratio_optimiser_->zero_grad();
    codebook_optimiser_->zero_grad();
    loss.backward();
  }
  ScopedPhase t(profiler_, block_, Phase::kOptimiser);
  if (plan.train_ratios) ratio_optimiser_->step();
  codebook_optimiser_->step();
  return task_loss;
}

void BlockCalibrator::apply(int step, const vq::Event& event) {
  const bool report = reported(event);
  const bool periodic =
      event.kind == vq::EventKind::kHullUpdate || event.kind == vq::EventKind::kConfirmAbove;
  ScopedPhase t(profiler_, block_, periodic ? Phase::kHullUpdate : Phase::kConfirm);
  Confirmation c;
  if (report) {
    c10::NoGradGuard no_grad;
    set_weights(/*hard=*/false);
    c.step = step;
    c.loss_before = block_loss(model_, block_, in_, target_,
                               std::min(in_.hidden.size(0), kConfirmationLossRows), params_.batch_size);
  }
  for (auto& q : quantizers_) c.truncation_error += q->on_event(event);
  if (!report) return;
  c10::NoGradGuard no_grad;
  set_weights(/*hard=*/false);
  c.loss_after = block_loss(model_, block_, in_, target_, std::min(in_.hidden.size(0), kConfirmationLossRows),
                            params_.batch_size);
  c.fraction = confirmed_share();
  record_.confirmations.push_back(c);
}

std::vector<vq::QuantizedWeight> BlockCalibrator::finish(std::vector<LayerRecord>* layer_records) {
  ScopedPhase t(profiler_, block_, Phase::kFinish);
  record_.confirmed_fraction = confirmed_share();
  std::vector<vq::QuantizedWeight> stored;
  std::vector<at::Tensor> hard;  // the stored weights, on the CPU
  for (size_t i = 0; i < quantizers_.size(); ++i) {
    stored.push_back(quantizers_[i]->finish(layers_[i].name));
    hard.push_back(stored.back().dequantize());
    slots_[i].set(hard.back().to(weights_[i].device()));
  }
  // One pass gives both the final loss and the quantized chain's next activations.
  out_ = run_block(model_, block_, in_, params_.batch_size);
  record_.loss_final = mean_squared_error(out_.hidden, target_, in_.hidden.size(0), params_.batch_size);
  record_.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  for (size_t i = 0; i < quantizers_.size(); ++i) {
    LayerRecord r;
    r.name = layers_[i].name;
    r.block = block_;
    r.shape = layers_[i].shape;
    r.bits = bits_of(params_, layers_[i].name);
    r.plan = stored[i].plan();
    r.calibrated = true;
    const at::Tensor w = weights_[i].to(at::kCPU);
    r.weight_error =
        (hard[i] - w).square().sum().item<double>() / std::max(1e-30, w.square().sum().item<double>());
    r.truncation_error = quantizers_[i]->progress().truncation_error;
    layer_records->push_back(std::move(r));
  }
  return stored;
}

}  // namespace vimvq::calib
