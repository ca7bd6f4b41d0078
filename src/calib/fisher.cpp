#include "vimvq/calib/fisher.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/autograd.h>

#include <random>

#include "vimvq/model/parameter_slot.h"

namespace vimvq::calib {
namespace {

// A label drawn from softmax(logits) with std::mt19937_64: ATen's samplers may differ by device.
int64_t draw_label(const at::Tensor& logits, std::mt19937_64& rng) {
  const at::Tensor p = at::softmax(logits.detach().to(at::kCPU, at::kDouble), -1).contiguous();
  const double* prob = p.data_ptr<double>();
  const double u = std::uniform_real_distribution<double>(0, 1)(rng);
  double cumulative = 0;
  for (int64_t c = 0; c < p.numel(); ++c)
    if ((cumulative += prob[c]) > u) return c;
  return p.numel() - 1;
}

}  // namespace

std::map<std::string, at::Tensor> weight_fisher(model::VimModel& model, const at::Tensor& images,
                                                const std::vector<std::string>& weights, uint64_t seed) {
  c10::AutoGradMode grad(true);
  std::map<std::string, at::Tensor> originals;
  for (const auto& pr : model.module().named_parameters(true)) originals.emplace(pr.name, pr.value);
  std::vector<model::ParameterSlot> slots;
  std::vector<at::Tensor> leaves, sums;
  for (const auto& name : weights) {
    slots.emplace_back(model.module(), name);
    leaves.push_back(originals.at(name).detach().clone().requires_grad_(true));
    sums.push_back(at::zeros_like(leaves.back(), leaves.back().options().dtype(at::kDouble)));
    slots.back().set(leaves.back());
  }
  std::mt19937_64 rng(seed);
  for (int64_t i = 0; i < images.size(0); ++i) {
    const at::Tensor logits = model.forward(images.slice(0, i, i + 1))[0];
    const at::Tensor loss = -at::log_softmax(logits, -1)[draw_label(logits, rng)];
    const auto grads = torch::autograd::grad({loss}, leaves);
    for (size_t j = 0; j < grads.size(); ++j) sums[j] += grads[j].to(at::kDouble).square();
  }
  std::map<std::string, at::Tensor> out;
  for (size_t j = 0; j < weights.size(); ++j) {
    slots[j].set(originals.at(weights[j]));
    out.emplace(weights[j], (sums[j] / static_cast<double>(images.size(0))).to(at::kCPU, at::kFloat));
  }
  return out;
}

}  // namespace vimvq::calib
