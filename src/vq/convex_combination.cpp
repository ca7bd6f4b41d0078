#include "vimvq/vq/convex_combination.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "src/vq/convex_combination_cpu.h"
#include "vimvq/util/error.h"

namespace vimvq::vq {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class ConvexCombinationFunction : public torch::autograd::Function<ConvexCombinationFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& logits, const at::Tensor& codebook,
                            const at::Tensor& hull, const at::Tensor& confirmed, const at::Tensor& codes) {
    ctx->save_for_backward({logits, codebook, hull, confirmed, codes});
    return cpu::convex_combination_forward(logits, codebook, hull, confirmed, codes);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list s = ctx->get_saved_variables();
    auto [grad_logits, grad_codebook] =
        cpu::convex_combination_backward(grad_outputs[0].contiguous(), s[0], s[1], s[2], s[3], s[4],
                                         ctx->needs_input_grad(0), ctx->needs_input_grad(1));
    return {grad_logits, grad_codebook, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// The same function as tensor operations, for devices without a fused kernel.
at::Tensor convex_combination_tensors(const at::Tensor& logits, const at::Tensor& codebook,
                                      const at::Tensor& hull, const at::Tensor& confirmed,
                                      const at::Tensor& codes) {
  const int64_t n_sub = hull.size(0), n = hull.size(1), d = codebook.size(1);
  const at::Tensor members = codebook.index_select(0, hull.reshape({-1})).view({n_sub, n, d});
  const at::Tensor soft = (at::softmax(logits, 1).unsqueeze(-1) * members).sum(1);
  const at::Tensor hard = codebook.index_select(0, codes);
  return at::where(confirmed.unsqueeze(1), hard, soft);
}

}  // namespace

at::Tensor convex_combination(const at::Tensor& logits, const at::Tensor& codebook, const at::Tensor& hull,
                              const at::Tensor& confirmed, const at::Tensor& codes, bool fused_cpu) {
  const int64_t n_sub = hull.size(0);
  if (logits.sizes() != hull.sizes() || confirmed.numel() != n_sub || codes.numel() != n_sub ||
      codebook.dim() != 2)
    throw Error("convex combination: mismatched logits, hull, confirmed, codes or codebook shapes");
  if (!fused_cpu || !logits.is_cpu() || logits.scalar_type() != at::kFloat ||
      codebook.scalar_type() != at::kFloat)
    return convex_combination_tensors(logits, codebook, hull, confirmed, codes);
  return ConvexCombinationFunction::apply(logits.contiguous(), codebook.contiguous(), hull.contiguous(),
                                          confirmed.contiguous(), codes.contiguous());
}

}  // namespace vimvq::vq
