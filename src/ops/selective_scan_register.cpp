// Registers the native operators (torch.ops.vimvq.selective_scan, bimamba_scan, bimamba_conv: CPU,
// CUDA when built, Autograd) so that TorchScript models call them from C++ and from Python
// (torch.ops.load_library) and backpropagate through them.
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

#include <string>

#include "vimvq/ops/bimamba.h"
#include "vimvq/ops/selective_scan.h"

namespace vimvq::ops {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Every native operator `vimvq::X(inputs...) -> Tensor` has a backward operator
// `vimvq::X_backward(grad, inputs...) -> Tensor[]` that returns one gradient per input and
// recomputes what it needs: the autograd node keeps only the inputs. Op names X (a type with a
// static `name`), so that each Function looks its two operators up once.
template <typename Op>
class NativeOpFunction : public torch::autograd::Function<NativeOpFunction<Op>> {
 public:
  static at::Tensor forward(AutogradContext* ctx, at::TensorList inputs) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->save_for_backward(inputs.vec());
    static const auto op = c10::Dispatcher::singleton().findSchemaOrThrow(Op::name, "");
    torch::jit::Stack stack(inputs.begin(), inputs.end());
    op.callBoxed(&stack);
    return stack.at(0).toTensor();
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    static const auto op =
        c10::Dispatcher::singleton().findSchemaOrThrow((std::string(Op::name) + "_backward").c_str(), "");
    const auto saved = ctx->get_saved_variables();
    torch::jit::Stack stack{grad_outputs.at(0)};
    stack.insert(stack.end(), saved.begin(), saved.end());
    op.callBoxed(&stack);
    return stack.at(0).toTensorVector();
  }
};

struct SelectiveScanOp {
  static constexpr const char* name = "vimvq::selective_scan";
};
struct BimambaScanOp {
  static constexpr const char* name = "vimvq::bimamba_scan";
};
struct BimambaConvOp {
  static constexpr const char* name = "vimvq::bimamba_conv";
};

at::Tensor selective_scan_autograd(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A,
                                   const at::Tensor& B, const at::Tensor& C, const at::Tensor& D,
                                   const at::Tensor& z, const at::Tensor& delta_bias) {
  return NativeOpFunction<SelectiveScanOp>::apply(at::TensorList({u, delta, A, B, C, D, z, delta_bias}));
}

at::Tensor bimamba_scan_autograd(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A,
                                 const at::Tensor& B, const at::Tensor& C, const at::Tensor& D,
                                 const at::Tensor& z, const at::Tensor& delta_bias) {
  return NativeOpFunction<BimambaScanOp>::apply(at::TensorList({u, delta, A, B, C, D, z, delta_bias}));
}

at::Tensor bimamba_conv_autograd(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  return NativeOpFunction<BimambaConvOp>::apply(at::TensorList({x, weight, bias}));
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
  m.def(
      "bimamba_scan(Tensor u, Tensor delta, Tensor A, Tensor B, Tensor C, Tensor D, Tensor z, "
      "Tensor delta_bias) -> Tensor");
  m.def(
      "bimamba_scan_backward(Tensor grad_out, Tensor u, Tensor delta, Tensor A, Tensor B, Tensor C, "
      "Tensor D, Tensor z, Tensor delta_bias) -> Tensor[]");
  m.def("bimamba_conv(Tensor x, Tensor weight, Tensor bias) -> Tensor");
  m.def("bimamba_conv_backward(Tensor grad_out, Tensor x, Tensor weight, Tensor bias) -> Tensor[]");
}

TORCH_LIBRARY_IMPL(vimvq, CPU, m) {
  m.impl("selective_scan", &vimvq::ops::selective_scan_forward_cpu);
  m.impl("selective_scan_backward", &vimvq::ops::selective_scan_backward_cpu);
  m.impl("bimamba_scan", &vimvq::ops::bimamba_scan_forward_cpu);
  m.impl("bimamba_scan_backward", &vimvq::ops::bimamba_scan_backward_cpu);
  m.impl("bimamba_conv", &vimvq::ops::bimamba_conv_forward_cpu);
  m.impl("bimamba_conv_backward", &vimvq::ops::bimamba_conv_backward_cpu);
}

TORCH_LIBRARY_IMPL(vimvq, Autograd, m) {
  m.impl("selective_scan", &vimvq::ops::selective_scan_autograd);
  m.impl("bimamba_scan", &vimvq::ops::bimamba_scan_autograd);
  m.impl("bimamba_conv", &vimvq::ops::bimamba_conv_autograd);
}
