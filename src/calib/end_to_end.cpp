#include "vimvq/calib/end_to_end.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/optim/adam.h>

#include <algorithm>
#include <chrono>

#include "src/calib/batch_order.h"
#include "src/calib/chain_ops.h"
#include "vimvq/model/parameter_slot.h"
#include "vimvq/vq/subvectors.h"

namespace vimvq::calib {
namespace {

// The KL figures of the record: a fixed, evenly spread subset (they are reports).
constexpr int64_t kReportImages = 256;

// One layer as the stage trains it: its weight is codebook rows gathered by fixed indices.
struct TrainedLayer {
  model::ParameterSlot slot;
  at::Tensor codebook;  // (groups * k, d), a leaf that requires grad
  at::Tensor rows;      // (n_sub) QuantizedWeight::codebook_rows
  std::vector<int64_t> shape;

  at::Tensor weight() const { return vq::from_subvectors(codebook.index_select(0, rows), shape); }
};

at::Tensor mean_kl(const at::Tensor& teacher, const at::Tensor& student) {
  const at::Tensor log_p = at::log_softmax(teacher, -1), log_q = at::log_softmax(student, -1);
  return (log_p.exp() * (log_p - log_q)).sum(-1).mean();
}

double kl_on(model::VimModel& model, const at::Tensor& images, const at::Tensor& teacher,
             const at::Tensor& rows, int64_t slice_rows) {
  c10::NoGradGuard no_grad;
  double sum = 0;
  for (int64_t s = 0; s < rows.size(0); s += slice_rows) {
    const at::Tensor part = rows.slice(0, s, std::min(rows.size(0), s + slice_rows));
    // In double, as `vimvq eval --reference` measures it: near zero, fp32 rounding makes it negative.
    const at::Tensor logits = model.forward(images.index_select(0, part)).to(at::kDouble);
    sum += mean_kl(teacher.index_select(0, part).to(at::kDouble), logits).item<double>() *
           static_cast<double>(part.size(0));
  }
  return sum / static_cast<double>(rows.size(0));
}

// The 1-D parameters of blocks `first_block` onwards (norm weights and biases, layer biases, D):
// the e2e_rest option tunes them where they are, in the model. The quantized weights are 2-D.
std::vector<at::Tensor> block_rest_parameters(model::VimModel& model, int first_block) {
  std::vector<at::Tensor> rest;
  for (int b = first_block; b < model.metadata().num_blocks; ++b)
    for (const auto& pr : model.block_module(b).named_parameters(true))
      if (pr.value.is_floating_point() && pr.value.dim() == 1) rest.push_back(pr.value);
  return rest;
}

}  // namespace

double kl_backward_by_blocks(model::VimModel& model, const at::Tensor& images, const at::Tensor& teacher,
                             int first_block) {
  using Pair = std::pair<at::Tensor, at::Tensor>;
  const int blocks = model.metadata().num_blocks;
  std::vector<Pair> inputs(blocks);
  Pair x;
  {
    c10::NoGradGuard no_grad;
    x = model.embed(images);
    for (int b = 0; b < blocks; ++b) {
      if (b >= first_block) inputs[b] = x;
      x = model.block(b, x.first, x.second);
    }
  }
  const auto leaf = [](const Pair& p) {
    return Pair{p.first.detach().requires_grad_(true), p.second.detach().requires_grad_(true)};
  };
  Pair in = leaf(x);
  const at::Tensor loss = mean_kl(teacher, model.head(in.first, in.second));
  loss.backward();
  for (int b = blocks - 1; b >= first_block; --b) {
    const Pair grad{in.first.grad(), in.second.grad()};
    // The first trained block's inputs need no gradient: nothing before it is tuned.
    in = b > first_block ? leaf(inputs[b]) : inputs[b];
    inputs[b] = Pair();
    const Pair out = model.block(b, in.first, in.second);
    std::vector<at::Tensor> outputs, grads;
    for (const auto& [o, g] : {std::pair{out.first, grad.first}, std::pair{out.second, grad.second}}) {
      if (g.defined() && o.requires_grad()) {
        outputs.push_back(o);
        grads.push_back(g);
      }
    }
    if (!outputs.empty()) torch::autograd::backward(outputs, grads);
  }
  return loss.item<double>();
}

at::Tensor teacher_logits(model::VimModel& model, const at::Tensor& images, int64_t slice_rows) {
  c10::NoGradGuard no_grad;
  std::vector<at::Tensor> parts;
  for (int64_t s = 0; s < images.size(0); s += slice_rows)
    parts.push_back(model.forward(images.slice(0, s, std::min(images.size(0), s + slice_rows))));
  return at::cat(parts);
}

EndToEndRecord finetune_end_to_end(model::VimModel& model, const at::Tensor& images,
                                   const at::Tensor& teacher, std::vector<vq::QuantizedWeight>& layers,
                                   int first_block, const CalibrationParams& p, at::Generator& generator,
                                   const std::function<void(int64_t)>& advance) {
  const auto start = std::chrono::steady_clock::now();
  const at::Device device = images.device();
  const int64_t n = images.size(0);
  EndToEndRecord record;
  const int64_t report_count = std::min(n, kReportImages);
  const at::Tensor report_rows = spread_rows(n, report_count, device);
  record.images = report_count;
  record.kl_before = kl_on(model, images, teacher, report_rows, p.batch_size);

  std::vector<TrainedLayer> trained;
  std::vector<at::Tensor> tuned;  // the codebooks, then (e2e_rest) the blocks' 1-D parameters
  for (const auto& l : layers) {
    trained.push_back({model::ParameterSlot(model.module(), l.name),
                       l.codebook.to(device, at::kFloat).clone().requires_grad_(true),
                       l.codebook_rows().to(device), l.shape});
    tuned.push_back(trained.back().codebook);
  }
  const std::vector<at::Tensor> rest =
      p.e2e_rest ? block_rest_parameters(model, first_block) : std::vector<at::Tensor>();
  for (at::Tensor r : rest) {
    r.requires_grad_(true);
    tuned.push_back(r);
    record.rest_values += r.numel();
  }
  torch::optim::Adam optimiser(tuned, torch::optim::AdamOptions(p.e2e_lr));
  BatchOrder batches(n, p.batch_size, generator, device);
  const int steps = e2e_steps_of(p);
  for (int s = 0; s < steps; ++s) {
    for (auto& t : trained) t.slot.set(t.weight());
    const at::Tensor batch = batches.next();
    optimiser.zero_grad();
    const at::Tensor x = images.index_select(0, batch), target = teacher.index_select(0, batch);
    if (p.e2e_by_blocks)
      kl_backward_by_blocks(model, x, target, first_block);
    else
      mean_kl(target, model.forward(x)).backward();
    optimiser.step();
    if (advance) advance(1);
  }
  for (at::Tensor r : rest) {
    r.requires_grad_(false);
    r.mutable_grad() = at::Tensor();
  }
  // Stored as fp16: the model runs, and the KL is measured, with what is written.
  for (size_t i = 0; i < layers.size(); ++i) {
    layers[i].codebook = trained[i].codebook.detach().to(at::kHalf).to(at::kFloat).to(at::kCPU);
    trained[i].slot.set(layers[i].dequantize().to(device));
  }
  record.steps = steps;
  record.kl_after = kl_on(model, images, teacher, report_rows, p.batch_size);
  record.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return record;
}

}  // namespace vimvq::calib
