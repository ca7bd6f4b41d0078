// The --profile renderers: per-block phase seconds, per-step milliseconds, and the step's ratio to
// a plain forward+backward of the same block (the physical floor is 1.0).
#include <sstream>

#include "vimvq/report/quantize_report.h"
#include "vimvq/util/strprintf.h"

namespace vimvq::report {
namespace {

using json = nlohmann::json;
using calib::Phase;

double seconds(const calib::BlockProfile& b, Phase p) { return b.seconds[static_cast<int>(p)]; }

double ratio(const calib::BlockProfile& b) {
  return b.reference_step_seconds > 0 ? b.step_seconds() / b.reference_step_seconds : 0;
}

}  // namespace

json profile_json(const calib::Profile& p) {
  json blocks = json::array();
  for (const auto& b : p.blocks) {
    json phases;
    for (int i = 0; i < calib::kPhaseCount; ++i)
      phases[calib::phase_name(static_cast<Phase>(i))] = b.seconds[i];
    blocks.push_back({{"block", b.block},
                      {"seconds", phases},
                      {"steps", b.steps},
                      {"first_step_seconds", b.first_step_seconds},
                      {"warmup_seconds", b.warmup_seconds},
                      {"step_seconds", b.step_seconds()},
                      {"reference_steps", b.reference_steps},
                      {"reference_step_seconds", b.reference_step_seconds},
                      {"step_to_reference", ratio(b)}});
  }
  return {{"embed_seconds", p.embed_seconds}, {"blocks", blocks}};
}

std::string profile_markdown(const calib::Profile& p) {
  std::ostringstream md;
  md << strprintf(
      "\n## Profile\n\nembedding %.2f s. Per calibrated block: seconds per phase, then per step "
      "(ms, steps after the first).\n\n",
      p.embed_seconds);
  md << "| block | targets | importances | codebooks | initial loss | warm-up | steps | soft w | forward "
        "| backward | optimiser | hull+check | confirm | finish | chain | step ms | plain f+b ms | ratio |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& b : p.blocks) {
    if (b.steps == 0) continue;
    const double per = 1e3 / static_cast<double>(b.steps);
    md << strprintf(
        "| %d | %.2f | %.2f | %.2f | %.2f | %.2f | %lld | %.1f | %.1f | %.1f | %.1f "
        "| %.2f | %.2f | %.2f | %.2f | %.1f | %.1f | %.2f |\n",
        b.block, seconds(b, Phase::kTargets), seconds(b, Phase::kImportances), seconds(b, Phase::kCodebooks),
        seconds(b, Phase::kInitialLoss), b.warmup_seconds, static_cast<long long>(b.steps),
        per * seconds(b, Phase::kSoftWeights), per * seconds(b, Phase::kForward),
        per * seconds(b, Phase::kBackward), per * seconds(b, Phase::kOptimiser),
        seconds(b, Phase::kHullUpdate), seconds(b, Phase::kConfirm), seconds(b, Phase::kFinish),
        seconds(b, Phase::kChainAdvance), 1e3 * b.step_seconds(), 1e3 * b.reference_step_seconds, ratio(b));
  }
  return md.str();
}

}  // namespace vimvq::report
