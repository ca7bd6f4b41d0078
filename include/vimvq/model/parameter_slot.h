// A parameter inside a TorchScript module, addressed by its dotted name, that can be replaced
// (TorchScript has no in-place assignment of a differentiable, non-leaf weight).
#pragma once

#include <torch/script.h>

#include <string>

namespace vimvq::model {

class ParameterSlot {
 public:
  // Throws vimvq::Error when a submodule or the parameter does not exist.
  ParameterSlot(torch::jit::Module root, const std::string& dotted_name);
  void set(const at::Tensor& value);
  // The module that holds the parameter (e.g. layers.0.mixer.in_proj for its .weight).
  torch::jit::Module owner() const { return owner_; }

 private:
  torch::jit::Module owner_;
  std::string leaf_;
};

}  // namespace vimvq::model
