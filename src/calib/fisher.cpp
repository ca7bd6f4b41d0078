#include "vimvq/calib/fisher.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/autograd.h>

#include <algorithm>

#include "vimvq/model/parameter_slot.h"

namespace vimvq::calib {

std::map<std::string, at::Tensor> weight_fisher(model::VimModel& model, const at::Tensor& images,
                                                const std::vector<std::string>& weights, int64_t labels) {
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
  for (int64_t i = 0; i < images.size(0); ++i) {
    const at::Tensor log_p = at::log_softmax(model.forward(images.slice(0, i, i + 1))[0], -1);
    const at::Tensor p = log_p.detach().to(at::kCPU, at::kDouble).exp().contiguous();
    const at::Tensor top = std::get<1>(p.topk(std::min(labels, p.numel()))).contiguous();
    const int64_t* label = top.data_ptr<int64_t>();
    const double* probability = p.data_ptr<double>();
    for (int64_t t = 0; t < top.numel(); ++t) {
      // One graph, one backward per label: the forward is paid once per image.
      const auto grads = torch::autograd::grad({-log_p[label[t]]}, leaves, {}, t + 1 < top.numel());
      const double weight = probability[label[t]];
      for (size_t j = 0; j < grads.size(); ++j) sums[j] += grads[j].to(at::kDouble).square() * weight;
    }
  }
  std::map<std::string, at::Tensor> out;
  for (size_t j = 0; j < weights.size(); ++j) {
    slots[j].set(originals.at(weights[j]));
    out.emplace(weights[j], (sums[j] / static_cast<double>(images.size(0))).to(at::kCPU, at::kFloat));
  }
  return out;
}

}  // namespace vimvq::calib
