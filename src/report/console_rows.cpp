#include <cstdio>
#include <string>

#include "vimvq/report/quantize_report.h"

namespace vimvq::report {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s;
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "x" : "") + std::to_string(shape[i]);
  return s;
}

std::string layer_row(const calib::LayerRecord& l, int num_blocks) {
  char line[512];
  const double numel = static_cast<double>(l.plan.numel);
  int n =
      std::snprintf(line, sizeof line, "[block %2d/%d] %-34s %10s k=%-4lld d=%d %5.3f+%5.3f bpw", l.block + 1,
                    num_blocks, l.name.c_str(), shape_text(l.shape).c_str(), static_cast<long long>(l.plan.k),
                    l.plan.d, l.plan.index_bits() / numel, l.plan.codebook_bits() / numel);
  if (l.calibrated && n > 0 && static_cast<size_t>(n) < sizeof line) {
    std::snprintf(line + n, sizeof line - n, "  w.err %.4f  trunc %.3g", l.weight_error, l.truncation_error);
  }
  return line;
}

std::string block_row(const calib::BlockRecord& b, int num_blocks, vq::Method method) {
  // Steps count only for methods that run them; early stopping makes them vary by block.
  const std::string steps = b.steps > 0 ? std::to_string(b.steps) + " steps, " : "";
  char line[256];
  std::snprintf(line, sizeof line, "[block %2d/%d] block loss %.4g -> %.4g (%s), %s%.1f s", b.index + 1,
                num_blocks, b.loss_init, b.loss_final, vq::method_name(method), steps.c_str(), b.seconds);
  return line;
}

std::string size_footer(const vq::SizeTotals& t, size_t layers, int64_t parameters, int rest_bytes) {
  char line[512];
  const int64_t other = parameters - t.weights;
  std::snprintf(line, sizeof line,
                "%zu layers, %lld weights: %.3f index + %.3f codebook = %.3f bits per weight; model %.3f MB "
                "with the rest at %d bits (fp32 %.3f MB), %.3f bits per parameter",
                layers, static_cast<long long>(t.weights), t.index_bpw(), t.codebook_bpw(), t.effective_bpw(),
                t.model_bytes(other, rest_bytes) / 1e6, 8 * rest_bytes, parameters * 4 / 1e6,
                8.0 * t.model_bytes(other, rest_bytes) / static_cast<double>(parameters));
  return line;
}

}  // namespace vimvq::report
