#include "vimvq/calib/calibrate.h"

#include <ATen/ATen.h>
#include <fnmatch.h>

#include <chrono>

#include "src/calib/chain_ops.h"
#include "vimvq/calib/block_calibrator.h"
#include "vimvq/model/parameter_slot.h"
#include "vimvq/util/cpu_block_cache.h"
#include "vimvq/util/error.h"

namespace vimvq::calib {
namespace {

bool matches(const std::string& name, const std::vector<std::string>& patterns) {
  for (const auto& p : patterns) {
    if (fnmatch(p.c_str(), name.c_str(), 0) == 0 || name.find(p) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

std::vector<model::LayerInfo> select_layers(const model::VimModel& model, const CalibrationParams& p) {
  std::vector<model::LayerInfo> selected;
  for (auto& l : model.quantizable_layers()) {
    if (!p.include.empty() && !matches(l.name, p.include)) continue;
    if (matches(l.name, p.exclude)) continue;
    selected.push_back(l);
  }
  return selected;
}

void check_model_supports(const model::VimModel& model, const CalibrationParams& p) {
  if (p.step_matmuls == MatmulPrecision::kBf16 && !model.device().is_cpu())
    throw Error(model.path() + " on " + model.device().str() +
                ": step_matmuls = bf16 is a CPU setting (oneDNN's bf16 products); on this device the "
                "steps would run in fp32 all the same, so leave it at fp32");
}

std::vector<LayerRecord> plan_layers(const model::VimModel& model, const CalibrationParams& p) {
  std::vector<LayerRecord> rows;
  for (const auto& l : select_layers(model, p)) {
    LayerRecord r;
    r.name = l.name;
    r.block = l.block;
    r.shape = l.shape;
    r.bits = bits_of(p, l.name);
    r.plan = vq::plan_layer(p.method, r.bits, l.shape, codewords_of(p, l.name));
    rows.push_back(std::move(r));
  }
  return rows;
}

int64_t planned_steps(const CalibrationParams& p, int blocks_with_layers) {
  return (vq::is_calibrated(p.method) ? static_cast<int64_t>(p.iterations) * blocks_with_layers : 0) +
         e2e_steps_of(p);
}

namespace {

// A finished block as a resumed run meets it: its stored weights go into the model, as
// BlockCalibrator::finish left them in the uninterrupted run.
void restore_block(model::VimModel& m, int b, const CalibrationResult& done) {
  const std::string prefix = "layers." + std::to_string(b) + ".";
  for (const auto& w : done.layers) {
    if (w.name.rfind(prefix, 0) != 0) continue;
    model::ParameterSlot(m.block_module(b), w.name.substr(prefix.size())).set(w.dequantize().to(m.device()));
  }
}

std::vector<model::LayerInfo> layers_of_block(const std::vector<model::LayerInfo>& selected, int block) {
  std::vector<model::LayerInfo> layers;
  for (const auto& l : selected) {
    if (l.block == block) layers.push_back(l);
  }
  return layers;
}

// Where a resumed run starts: its finished blocks in `result`, the generator where it stood.
int continue_from(const ResumePoint* resume, CalibrationResult& result, at::Generator& generator) {
  if (!resume) return 0;
  result = resume->done;
  generator.set_state(resume->generator_state);
  return resume->next_block;
}

void end_to_end_stage(model::VimModel& m, const at::Tensor& images, const at::Tensor& teacher,
                      int first_block, const CalibrationParams& p, at::Generator& generator,
                      const Callbacks& cb, CalibrationResult& result) {
  if (cb.on_end_to_end) cb.on_end_to_end(e2e_steps_of(p));
  result.end_to_end =
      finetune_end_to_end(m, images, teacher, result.layers, first_block, p, generator, cb.advance);
}

// One block's layers trained on the quantized chain `q` against `target`, their weights and
// records added to `result`; returns the block's output on `q` with its final weights.
Chain calibrate_block(model::VimModel& m, int b, const std::vector<model::LayerInfo>& layers,
                      const CalibrationParams& p, const Chain& q, const at::Tensor& target,
                      at::Generator& generator, const Callbacks& cb, Profiler* profiler,
                      CalibrationResult& result) {
  BlockCalibrator block(m, b, layers, p, q, target, profiler);
  block.train(generator, cb.advance);
  std::vector<LayerRecord> records;
  for (auto& w : block.finish(&records)) result.layers.push_back(std::move(w));
  for (auto& r : records) {
    if (cb.on_layer) cb.on_layer(r);
    result.layer_records.push_back(std::move(r));
  }
  result.blocks.push_back(block.record());
  if (cb.on_block) cb.on_block(result.blocks.back());
  return block.take_output();
}

}  // namespace

CalibrationResult quantize_model(model::VimModel& m, const at::Tensor& images, const CalibrationParams& p,
                                 const Callbacks& cb, Profiler* profiler, const ResumePoint* resume,
                                 const at::Tensor& stage_extra) {
  validate(p);
  check_model_supports(m, p);
  const auto start = std::chrono::steady_clock::now();
  const auto selected = select_layers(m, p);
  if (selected.empty()) throw Error("no quantizable layer matches the --include / --exclude patterns");
  for (at::Tensor param : m.module().parameters(true)) param.requires_grad_(false);
  // The end-to-end stage's images and targets, while every block is still full precision.
  const bool stage = e2e_steps_of(p) > 0;
  const bool extra = stage && stage_extra.defined() && stage_extra.size(0) > 0;
  at::Tensor teacher;
  if (stage) teacher = teacher_logits(m, images, p.batch_size);
  if (extra) teacher = at::cat({teacher, teacher_logits(m, stage_extra, p.batch_size)});
  Chain fp;
  {
    ScopedPhase t(profiler, -1, Phase::kCount);
    fp = embed_chain(m, images, p.batch_size);
  }
  Chain q = fp;
  CalibrationResult result;
  at::Generator generator = at::detail::createCPUGenerator(p.seed);
  const int first_block = continue_from(resume, result, generator);
  const int last_block = selected.back().block;  // nothing after it needs the chains
  for (int b = 0; b <= last_block; ++b) {
    const std::vector<model::LayerInfo> layers = layers_of_block(selected, b);
    Chain target, q_next;
    {
      ScopedPhase t(profiler, b, Phase::kTargets);
      target = run_block(m, b, fp, p.batch_size);  // the full-precision block on the full-precision chain
    }
    if (b < first_block) {
      restore_block(m, b, result);
    } else if (!layers.empty()) {
      q_next = calibrate_block(m, b, layers, p, q, target.hidden, generator, cb, profiler, result);
      if (cb.on_checkpoint && b < last_block) cb.on_checkpoint(b + 1, result, generator.get_state());
    }
    if (b == last_block) break;
    fp = std::move(target);
    if (q_next.hidden.defined()) {
      q = std::move(q_next);
      continue;
    }
    ScopedPhase t(profiler, b, Phase::kChainAdvance);
    q = run_block(m, b, q, p.batch_size);  // the quantized chain moves on through the hard block
  }
  if (stage) {
    fp = q = Chain();  // the chains are done with
    end_to_end_stage(m, extra ? at::cat({images, stage_extra}) : images, teacher, selected.front().block, p,
                     generator, cb, result);
  }
  // Blocks kept for the calibration's activations would only add to the peak of what follows
  // (writing, evaluation at another batch size).
  util::release_cpu_block_cache();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace vimvq::calib
