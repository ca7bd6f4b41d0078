// The diagonal Fisher information of chosen weights: how much the model's output distribution
// moves per squared change of each weight. --target-bpw ranks widths by it (docs/METHOD.md, "Bit
// allocation"), so that an error is priced by what it does to the logits, after every later block.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "vimvq/model/vim_model.h"

namespace vimvq::calib {

// F = mean over `images` of E_y[(d/dW -log p(y | x))^2], y ~ softmax of the model's own logits:
// the true Fisher, with the expectation taken exactly over each image's `labels` most probable
// labels (a single drawn label per image, the first rule, left the ranking to the draw on a model
// that is usually sure of itself). Summed in fp64 and returned in fp32 on the CPU (Vim-B's
// quantized weights take 340 MB so). The model's parameters are left as they were.
std::map<std::string, at::Tensor> weight_fisher(model::VimModel& model, const at::Tensor& images,
                                                const std::vector<std::string>& weights, int64_t labels);

}  // namespace vimvq::calib
