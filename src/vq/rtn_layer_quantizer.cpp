// rtn as a LayerQuantizer: per-row uniform levels, fixed at construction.
#include <ATen/ATen.h>

#include "src/vq/layer_quantizers.h"
#include "vimvq/vq/baselines.h"

namespace vimvq::vq {
namespace {

class RtnQuantizer final : public LayerQuantizer {
 public:
  RtnQuantizer(const at::Tensor& weight, int bits)
      : weight_(weight), bits_(bits), rtn_(rtn_codes(weight, bits)) {}

  at::Tensor weight() const override { return hard_weight(); }
  at::Tensor hard_weight() const override { return rtn_quantize(weight_, bits_); }
  LayerProgress progress() const override { return {weight_.numel(), weight_.numel(), 0}; }

  QuantizedWeight finish(const std::string& name) const override {
    QuantizedWeight q;
    q.name = name;
    q.shape = weight_.sizes().vec();
    q.method = Method::kRtn;
    q.groups = weight_.size(0);
    q.k = int64_t{1} << bits_;
    q.d = 1;
    q.code_bits = bits_;
    q.codebook = stored_codebook(rtn_.levels.reshape({-1, 1}));
    q.codes = code_bytes(rtn_.codes);
    return q;
  }

 private:
  at::Tensor weight_;
  int bits_;
  RtnResult rtn_;
};

}  // namespace

std::unique_ptr<LayerQuantizer> make_rtn_quantizer(const at::Tensor& weight, int bits) {
  return std::make_unique<RtnQuantizer>(weight, bits);
}

}  // namespace vimvq::vq
