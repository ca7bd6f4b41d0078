#include <cstdio>
#include <sstream>

#include "vimvq/report/metrics.h"
#include "vimvq/report/quantize_report.h"
#include "vimvq/util/strprintf.h"

namespace vimvq::report {
namespace {

std::string accuracy_section(const AccuracyRecord& a) {
  return strprintf(
      "\n| | top-1 | top-5 |\n|---|---|---|\n| full precision | %.2f | %.2f |\n| quantized | %.2f (%s) | "
      "%.2f |\n"
      "\ntop-1 agreement %.2f %% (%s), mean KL %.5f, on %lld images of %s\n",
      a.fp_top1, a.fp_top5, a.top1(), interval95_text(a.top1_correct, a.images).c_str(), a.top5,
      a.top1_agreement(), interval95_text(a.agreeing, a.images).c_str(), a.mean_kl,
      static_cast<long long>(a.images), a.data.c_str());
}

std::string agreement_line(const AgreementRecord& a) {
  const std::string which =
      a.held_out ? strprintf("%lld images of %s that the calibration left out",
                             static_cast<long long>(a.images), a.data.c_str())
                 : strprintf(
                       "the %lld calibration images themselves (in-sample, so optimistic: the folder had no "
                       "others; --eval-data gives held-out accuracy)",
                       static_cast<long long>(a.images));
  const std::string skipped =
      a.skipped ? strprintf(", %lld unreadable skipped", static_cast<long long>(a.skipped)) : std::string();
  return strprintf("- against the original: top-1 agreement %.2f %% (%s), mean KL %.3g, on %s%s\n",
                   a.top1_agreement(), interval95_text(a.agreeing, a.images).c_str(), a.mean_kl,
                   which.c_str(), skipped.c_str());
}

}  // namespace

std::string to_markdown(const QuantizeReport& r) {
  std::ostringstream md;
  md << "# vimvq quantize report\n\n";
  md << "- model: `" << r.model << "`\n- output: `" << r.output << "`\n";
  md << "- method: " << vq::method_name(r.params.method) << ", " << r.params.bits << " bits, seed "
     << r.params.seed << "\n";
  const SizeRecord& s = r.size;
  const double fp32 = s.parameters * 4.0;
  md << strprintf(
      "- size: %.3f MB fp32 -> %.3f MB packed (%.2fx); quantized weights: %.3f index + %.3f codebook = %.3f "
      "bits "
      "per weight; whole file %.3f bits per parameter\n",
      fp32 / 1e6, s.packed_bytes / 1e6, fp32 / s.packed_bytes, s.quantized.index_bpw(),
      s.quantized.codebook_bpw(), s.quantized.effective_bpw(), 8.0 * s.packed_bytes / s.parameters);
  md << strprintf(
      "- unquantized parameters stored as %s; loaded to run compressed, the model holds %.3f MB: "
      "codes %.3f, codebooks %.3f, the rest %.3f (fp32)\n",
      s.rest_dtype.c_str(), (s.resident_codes + s.resident_codebooks + s.resident_rest) / 1e6,
      s.resident_codes / 1e6, s.resident_codebooks / 1e6, s.resident_rest / 1e6);
  if (r.end_to_end)
    md << strprintf(
        "- end-to-end stage: %d steps, mean KL against full precision %.4g -> %.4g on %lld of the "
        "calibration images it trained on (in-sample), %.1f s (included in the calibration time); "
        "%lld unquantized values tuned besides the codebooks\n",
        r.end_to_end->steps, r.end_to_end->kl_before, r.end_to_end->kl_after,
        static_cast<long long>(r.end_to_end->images), r.end_to_end->seconds,
        static_cast<long long>(r.end_to_end->rest_values));
  md << strprintf("- time: %.1f s calibration, %.1f s total; peak memory %.0f MB\n", r.calibration_seconds,
                  r.wall_seconds, r.peak_memory_mb);
  if (r.agreement) md << agreement_line(*r.agreement);
  if (r.accuracy) md << accuracy_section(*r.accuracy);
  md << "\n| layer | shape | k | d | index bpw | codebook bpw | weight err | truncation |\n"
        "|---|---|---|---|---|---|---|---|\n";
  for (const auto& l : r.layers) {
    const double numel = static_cast<double>(l.plan.numel);
    md << strprintf("| %s | %s | %lld | %d | %.3f | %.3f | %.4f | %.3g |\n", l.name.c_str(),
                    shape_text(l.shape).c_str(), static_cast<long long>(l.plan.k), l.plan.d,
                    l.plan.index_bits() / numel, l.plan.codebook_bits() / numel, l.weight_error,
                    l.truncation_error);
  }
  md << "\n| block | loss before | loss after | steps | seconds |\n|---|---|---|---|---|\n";
  for (const auto& b : r.blocks) {
    md << strprintf("| %d | %.4g | %.4g | %d | %.1f |\n", b.index, b.loss_init, b.loss_final, b.steps,
                    b.seconds);
  }
  if (r.profile) md << profile_markdown(*r.profile);
  return md.str();
}

}  // namespace vimvq::report
