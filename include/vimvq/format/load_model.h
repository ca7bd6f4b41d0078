// Opening any model vimvq reads: a TorchScript file under the model contract, or a packed
// checkpoint, which loads as its architecture with the dequantized weights.
#pragma once

#include <string>

#include "vimvq/model/vim_model.h"

namespace vimvq::format {

// Throws vimvq::Error("<path>: <problem>").
model::VimModel load_model(const std::string& path, const c10::Device& device = c10::Device("cpu"));

}  // namespace vimvq::format
