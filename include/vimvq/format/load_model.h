// Opening any model vimvq reads: a TorchScript file under the model contract, or a packed
// checkpoint, which runs compressed (codes and codebooks; format::compressed) or, with
// LoadForm::kDense or for an architecture without compressed linears, with dequantized weights.
#pragma once

#include <string>

#include "vimvq/model/vim_model.h"

namespace vimvq::format {

enum class LoadForm { kCompressed, kDense };

// Throws vimvq::Error("<path>: <problem>"). `compressed_layers`: how many quantized layers run
// compressed (0 for a TorchScript model).
model::VimModel load_model(const std::string& path, const c10::Device& device = c10::Device("cpu"),
                           LoadForm form = LoadForm::kCompressed, int* compressed_layers = nullptr);

}  // namespace vimvq::format
