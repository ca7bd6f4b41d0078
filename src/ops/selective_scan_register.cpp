// Registers torch.ops.vimvq.selective_scan (CPU, CUDA when built, Autograd) so that TorchScript
// models call it from C++ and from Python (torch.ops.load_library) and backpropagate through it.
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

#include "vimvq/ops/selective_scan.h"

namespace vimvq::ops {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

at::Tensor call_forward(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A,
                        const at::Tensor& B, const at::Tensor& C, const at::Tensor& D, const at::Tensor& z,
                        const at::Tensor& delta_bias) {
  static auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("vimvq::selective_scan", "")
          .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                            const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&)>();
  return op.call(u, delta, A, B, C, D, z, delta_bias);
}

std::vector<at::Tensor> call_backward(const at::Tensor& grad, const variable_list& saved) {
  static auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("vimvq::selective_scan_backward", "")
          .typed<std::vector<at::Tensor>(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                         const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                         const at::Tensor&, const at::Tensor&, const at::Tensor&)>();
  return op.call(grad, saved[0], saved[1], saved[2], saved[3], saved[4], saved[5], saved[6], saved[7]);
}

class SelectiveScanFunction : public torch::autograd::Function<SelectiveScanFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& u, const at::Tensor& delta,
                            const at::Tensor& A, const at::Tensor& B, const at::Tensor& C,
                            const at::Tensor& D, const at::Tensor& z, const at::Tensor& delta_bias) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->save_for_backward({u, delta, A, B, C, D, z, delta_bias});
    return call_forward(u, delta, A, B, C, D, z, delta_bias);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    auto grads = call_backward(grad_outputs[0], ctx->get_saved_variables());
    return variable_list(grads.begin(), grads.end());
  }
};

at::Tensor selective_scan_autograd(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A,
                                   const at::Tensor& B, const at::Tensor& C, const at::Tensor& D,
                                   const at::Tensor& z, const at::Tensor& delta_bias) {
  return SelectiveScanFunction::apply(u, delta, A, B, C, D, z, delta_bias);
}

}  // namespace
}  // namespace vimvq::ops

TORCH_LIBRARY(vimvq, m) {
  m.def(
      "selective_scan(Tensor u, Tensor delta, Tensor A, Tensor B, Tensor C, Tensor D, Tensor z, "
      "Tensor delta_bias) -> Tensor");
  m.def(
      "selective_scan_backward(Tensor grad_out, Tensor u, Tensor delta, Tensor A, Tensor B, Tensor C, "
      "Tensor D, Tensor z, Tensor delta_bias) -> Tensor[]");
}

TORCH_LIBRARY_IMPL(vimvq, CPU, m) {
  m.impl("selective_scan", &vimvq::ops::selective_scan_forward_cpu);
  m.impl("selective_scan_backward", &vimvq::ops::selective_scan_backward_cpu);
}

TORCH_LIBRARY_IMPL(vimvq, Autograd, m) { m.impl("selective_scan", &vimvq::ops::selective_scan_autograd); }
