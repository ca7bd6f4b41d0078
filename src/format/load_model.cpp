#include "vimvq/format/load_model.h"

#include "vimvq/format/packed_checkpoint.h"
#include "vimvq/util/error.h"

namespace vimvq::format {

model::VimModel load_model(const std::string& path, const c10::Device& device, LoadForm form,
                           int* compressed_layers) {
  if (compressed_layers) *compressed_layers = 0;
  if (!is_packed_file(path)) return model::VimModel::load(path, device);
  torch::jit::Module module;
  try {
    PackedCheckpoint packed = read_packed(path);
    module = form == LoadForm::kDense ? dequantize(packed, device)
                                      : compressed(std::move(packed), device, compressed_layers);
  } catch (const Error& e) {
    const std::string what = e.what();
    throw Error(what.rfind(path, 0) == 0 ? what : path + ": " + what);
  }
  return model::VimModel::from_module(path, std::move(module), device);
}

}  // namespace vimvq::format
