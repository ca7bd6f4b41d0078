// A TorchScript Vim under the model contract: forward, forward_embed, layers[i] (each with
// forward(hidden, residual) and layer_inputs), forward_head, metadata(). The C++ side never
// hard-codes a layer: everything it needs comes through these methods and the metadata.
#pragma once

#include <torch/script.h>

#include <map>
#include <string>
#include <vector>

#include "vimvq/model/metadata.h"

namespace vimvq::model {

struct LayerInfo {
  std::string name;  // full parameter name, e.g. "layers.3.mixer.in_proj.weight"
  int block = 0;
  std::string local_name;  // relative to the block
  std::vector<int64_t> shape;
  int64_t numel = 0;
};

class VimModel {
 public:
  // Loads a TorchScript file and validates the contract; throws vimvq::Error naming the file and
  // what is missing. (A packed checkpoint is format::load_model's job.)
  static VimModel load(const std::string& path, const c10::Device& device = c10::Device("cpu"));
  // Validates the contract of a module already loaded from `path` (on `device`).
  static VimModel from_module(const std::string& path, torch::jit::Module module, const c10::Device& device);

  at::Tensor forward(const at::Tensor& images);
  std::pair<at::Tensor, at::Tensor> embed(const at::Tensor& images);
  std::pair<at::Tensor, at::Tensor> block(int index, const at::Tensor& hidden, const at::Tensor& residual);
  at::Tensor head(const at::Tensor& hidden, const at::Tensor& residual);

  const ModelMetadata& metadata() const { return metadata_; }
  const std::string& path() const { return path_; }
  std::vector<LayerInfo> quantizable_layers() const;
  int64_t num_parameters() const;
  // What the loaded model holds: the compressed linears' codes and codebooks, and the rest
  // (parameters and buffers, dense weights included).
  struct ResidentBytes {
    int64_t codes = 0, codebooks = 0, rest = 0;
    int64_t total() const { return codes + codebooks + rest; }
  };
  ResidentBytes resident_bytes() const;
  torch::jit::Module& module() { return module_; }
  torch::jit::Module& block_module(int index) { return blocks_.at(index); }
  // Inputs of each quantizable linear layer of block `index`, by name relative to the block.
  std::map<std::string, at::Tensor> layer_inputs(int index, const at::Tensor& hidden,
                                                 const at::Tensor& residual);
  const c10::Device& device() const { return device_; }

 private:
  VimModel(std::string path, torch::jit::Module module, ModelMetadata metadata, c10::Device device);
  void check_head_width();

  std::string path_;
  torch::jit::Module module_;
  std::vector<torch::jit::Module> blocks_;
  ModelMetadata metadata_;
  c10::Device device_;
};

}  // namespace vimvq::model
