#include "vimvq/model/parameter_slot.h"

#include "vimvq/util/error.h"

namespace vimvq::model {

ParameterSlot::ParameterSlot(torch::jit::Module root, const std::string& dotted) : owner_(std::move(root)) {
  size_t start = 0, dot;
  while ((dot = dotted.find('.', start)) != std::string::npos) {
    const std::string part = dotted.substr(start, dot - start);
    if (!owner_.hasattr(part) || !owner_.attr(part).isModule())
      throw Error("no submodule '" + part + "' in " + dotted);
    owner_ = owner_.attr(part).toModule();
    start = dot + 1;
  }
  leaf_ = dotted.substr(start);
  if (!owner_.hasattr(leaf_)) throw Error("no parameter " + dotted);
}

void ParameterSlot::set(const at::Tensor& value) {
  owner_.register_parameter(leaf_, value, /*is_buffer=*/false);
}

}  // namespace vimvq::model
