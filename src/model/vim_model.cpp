#include "vimvq/model/vim_model.h"

#include <c10/core/GradMode.h>

#include <filesystem>
#include <map>

#include "vimvq/util/error.h"

namespace vimvq::model {
namespace {

std::pair<at::Tensor, at::Tensor> as_pair(const c10::IValue& v, const std::string& what) {
  if (!v.isTuple() || v.toTupleRef().elements().size() != 2)
    throw Error(what + " must return (hidden, residual)");
  const auto& e = v.toTupleRef().elements();
  return {e[0].toTensor(), e[1].toTensor()};
}

// TorchScript's interpreter errors end with the Python-style exception line ("RuntimeError: ...").
std::string last_line(const std::string& text) {
  const size_t end = text.find_last_not_of(" \n");
  if (end == std::string::npos) return text;
  const size_t newline = text.rfind('\n', end);
  const size_t start = newline == std::string::npos ? 0 : newline + 1;
  return text.substr(start, end + 1 - start);
}

}  // namespace

VimModel::VimModel(std::string path, torch::jit::Module module, ModelMetadata metadata, c10::Device device)
    : path_(std::move(path)), module_(std::move(module)), metadata_(std::move(metadata)), device_(device) {
  for (const auto& child : module_.attr("layers").toModule().named_children()) blocks_.push_back(child.value);
}

VimModel VimModel::load(const std::string& path, const c10::Device& device) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec && ec != std::errc::no_such_file_or_directory)
    throw Error(path + ": " + ec.message());  // a link loop...
  if (!std::filesystem::exists(status)) throw Error(path + ": no such file");
  if (std::filesystem::is_directory(status))
    throw Error(path + ": is a folder, expected a TorchScript model file (.pt) or a packed file (.vqpk)");
  torch::jit::Module module;
  try {
    module = torch::jit::load(path, device);
  } catch (const c10::Error& e) {
    std::string what = e.what_without_backtrace();
    if (what.find("constants.pkl") != std::string::npos) {
      throw Error(path +
                  ": is a PyTorch checkpoint (torch.save), not a TorchScript model; make a vimvq model from "
                  "it with scripts/export.py --config <vim_tiny|vim_small|vim_base> --checkpoint " +
                  path + " -o model.pt");
    }
    if (what.find("vimvq::") != std::string::npos || what.find("Unknown builtin op") != std::string::npos) {
      throw Error(path +
                  ": model uses an operator this build does not provide: " + what.substr(0, what.find('\n')));
    }
    throw Error(path + ": not a TorchScript model (" + what.substr(0, what.find('\n')) + ")");
  }
  return from_module(path, std::move(module), device);
}

VimModel VimModel::from_module(const std::string& path, torch::jit::Module module,
                               const c10::Device& device) {
  module.eval();
  const std::string contract = path + ": breaks the vimvq model contract: ";
  for (const char* method : {"forward", "forward_embed", "forward_head", "metadata"}) {
    if (!module.find_method(method)) throw Error(contract + "no method '" + method + "'");
  }
  if (!module.hasattr("layers") || !module.attr("layers").isModule())
    throw Error(contract + "no 'layers' module list");
  const std::string meta_json = module.get_method("metadata")({}).toStringRef();
  ModelMetadata meta = parse_metadata(meta_json, path);
  int n_blocks = 0;
  for (const auto& child : module.attr("layers").toModule().named_children()) {
    for (const char* method : {"forward", "layer_inputs", "quantizable_layers"}) {
      if (!child.value.find_method(method)) {
        throw Error(contract + "block layers." + child.name + " has no method '" + method + "'");
      }
    }
    ++n_blocks;
  }
  if (n_blocks != meta.num_blocks) {
    throw Error(contract + "metadata says " + std::to_string(meta.num_blocks) + " blocks, the model has " +
                std::to_string(n_blocks));
  }
  VimModel model(path, std::move(module), std::move(meta), device);
  model.check_head_width();
  return model;
}

// One image of zeros through the whole model: the head's width must be the declared class count
// (class names, per-class reports and --predictions index by it).
void VimModel::check_head_width() {
  c10::NoGradGuard no_grad;
  const auto& in = metadata_.preprocess;
  const at::Tensor probe = at::zeros({1, in.channels, metadata_.image_size, metadata_.image_size},
                                     at::TensorOptions().device(device_));
  at::Tensor out;
  try {
    out = forward(probe);
  } catch (const std::exception& e) {  // c10::Error, or the interpreter's JITException
    throw Error(path_ + ": breaks the vimvq model contract: a " + std::to_string(metadata_.image_size) + "x" +
                std::to_string(metadata_.image_size) +
                " image (metadata input.image_size) does not go through it: " + last_line(e.what()));
  }
  if (out.dim() != 2 || out.size(0) != 1 || out.size(1) != metadata_.num_classes) {
    throw Error(path_ + ": metadata: num_classes is " + std::to_string(metadata_.num_classes) +
                ", but the model's head gives " + (out.dim() == 2 ? std::to_string(out.size(1)) : "no") +
                " class scores per image");
  }
}

at::Tensor VimModel::forward(const at::Tensor& images) { return module_.forward({images}).toTensor(); }

std::pair<at::Tensor, at::Tensor> VimModel::embed(const at::Tensor& images) {
  return as_pair(module_.get_method("forward_embed")({images}), path_ + ": forward_embed");
}

std::pair<at::Tensor, at::Tensor> VimModel::block(int index, const at::Tensor& hidden,
                                                  const at::Tensor& residual) {
  return as_pair(blocks_.at(index).forward({hidden, residual}), path_ + ": block forward");
}

std::map<std::string, at::Tensor> VimModel::layer_inputs(int index, const at::Tensor& hidden,
                                                         const at::Tensor& residual) {
  const c10::IValue out = blocks_.at(index).get_method("layer_inputs")({hidden, residual});
  std::map<std::string, at::Tensor> inputs;
  for (const auto& item : out.toGenericDict())
    inputs.emplace(item.key().toStringRef(), item.value().toTensor());
  return inputs;
}

at::Tensor VimModel::head(const at::Tensor& hidden, const at::Tensor& residual) {
  return module_.get_method("forward_head")({hidden, residual}).toTensor();
}

std::vector<LayerInfo> VimModel::quantizable_layers() const {
  std::vector<LayerInfo> layers;
  for (size_t b = 0; b < blocks_.size(); ++b) {
    std::map<std::string, at::Tensor> params;
    for (const auto& p : blocks_[b].named_parameters(true)) params.emplace(p.name, p.value);
    for (const auto& local : metadata_.quantizable_layers) {
      auto it = params.find(local);
      if (it == params.end())
        throw Error(path_ + ": block " + std::to_string(b) + " has no parameter '" + local + "'");
      LayerInfo info;
      info.name = "layers." + std::to_string(b) + "." + local;
      info.block = static_cast<int>(b);
      info.local_name = local;
      info.shape = it->second.sizes().vec();
      info.numel = it->second.numel();
      layers.push_back(std::move(info));
    }
  }
  return layers;
}

VimModel::ResidentBytes VimModel::resident_bytes() const {
  ResidentBytes r;
  for (const auto& p : module_.parameters(true)) r.rest += static_cast<int64_t>(p.nbytes());
  for (const auto& b : module_.buffers(true)) r.rest += static_cast<int64_t>(b.nbytes());
  for (const auto& m : module_.modules()) {
    if (!m.hasattr("vq_d") || m.attr("vq_d").toInt() == 0) continue;
    r.codes += static_cast<int64_t>(m.attr("vq_codes").toTensor().nbytes());
    r.codebooks += static_cast<int64_t>(m.attr("vq_codebook").toTensor().nbytes());
  }
  return r;
}

int64_t VimModel::num_parameters() const {
  int64_t n = 0;
  for (const auto& p : module_.parameters(true)) n += p.numel();
  return n;
}

}  // namespace vimvq::model
