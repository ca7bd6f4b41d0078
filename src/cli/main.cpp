// vimvq: post-training vector quantization of Vision Mamba models. This file only parses options
// (CLI11) into the subcommands' option structs and maps failures to one-line errors.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>

#include "src/cli/commands.h"
#include "vimvq/log/log.h"
#include "vimvq/util/error.h"
#include "vimvq/util/output_set.h"

namespace {

using namespace vimvq::cli;

CLI::App* add_eval(CLI::App& app, EvalOptions& eval) {
  auto* ev = app.add_subcommand("eval", "top-1/top-5 of a model on an image folder");
  ev->add_option("model", eval.model, "TorchScript model (or packed checkpoint)")->required();
  ev->add_option("--data", eval.data, "ImageFolder tree, or a flat folder with --labels")->required();
  ev->add_option("--labels", eval.labels,
                 "label file for a flat folder (ILSVRC ground-truth or 'file label')");
  ev->add_option("--label-base", eval.label_base,
                 "first class index in --labels (default 1 for one-column files, else 0)");
  ev->add_option("--batch-size", eval.batch_size, "images per forward")->capture_default_str();
  ev->add_option("--threads", eval.threads, "compute and decode threads (0: all cores)")
      ->capture_default_str();
  ev->add_option("--device", eval.device, "cpu, cuda or cuda:N")->capture_default_str();
  ev->add_option("--limit", eval.limit, "evaluate only the first N images (0: all)");
  ev->add_option("--reference", eval.reference, "second model: report top-1 agreement and mean KL");
  ev->add_option("--report", eval.report, "write a JSON report");
  ev->add_option("--predictions", eval.predictions, "write per-image top-5 predictions as CSV");
  ev->add_option("--on-bad-image", eval.on_bad_image, "fail or skip (skips are counted in the report)")
      ->capture_default_str();
  return ev;
}

CLI::App* add_quantize(CLI::App& app, QuantizeOptions& quant) {
  auto* qu = app.add_subcommand("quantize", "vector-quantize a model's block linear layers (ViM-VQ)");
  qu->add_option("model", quant.model, "TorchScript model")->required();
  qu->add_option("calib", quant.calib, "folder of calibration images (labels not needed, may be nested)")
      ->required();
  qu->add_option("-o,--output", quant.output,
                 "packed checkpoint to write (default: beside the model, MODEL.METHOD-wBITS.vqpk)");
  qu->add_option("--bits", quant.bits, "index bits per weight: 1, 2, 3 (or 4)");
  qu->add_option("--method", quant.method, "vimvq (default), vq4dit, kmeans or rtn");
  qu->add_flag("--no-hull-update", quant.no_hull_update, "ablation: keep every hull fixed");
  qu->add_flag("--no-incremental", quant.no_incremental, "ablation: harden every code at once at the end");
  qu->add_option("--config", quant.config, "JSON file of parameters (configs/)");
  qu->add_option("--set", quant.sets, "override a parameter: key=value (repeatable)");
  qu->add_option("--include", quant.include, "only layers matching these patterns (glob or substring)");
  qu->add_option("--exclude", quant.exclude, "skip layers matching these patterns");
  qu->add_option("--calib-size", quant.calib_size, "calibration images (seeded subset)")
      ->capture_default_str();
  qu->add_option("--batch-size", quant.batch_size, "calibration images per optimisation step");
  qu->add_option("--iters", quant.iters, "optimisation steps per block");
  qu->add_option("--seed", quant.seed, "seed for subsets, k-means and batches");
  qu->add_option("--device", quant.device, "cpu, cuda or cuda:N")->capture_default_str();
  qu->add_option("--threads", quant.threads, "threads (0: all cores)");
  qu->add_option("--eval-data", quant.eval_data,
                 "labelled folder: report full-precision and quantized accuracy");
  qu->add_option("--eval-limit", quant.eval_limit, "evaluate only the first N images of --eval-data");
  qu->add_option(
        "--agreement-images", quant.agreement_images,
        "without --eval-data: top-1 agreement and KL against the original on this many calibration-folder "
        "images the calibration left out, or on the calibration images if it left out none (0: skip)")
      ->capture_default_str();
  qu->add_option("--report", quant.report, "write the JSON report (and a Markdown one beside it)");
  qu->add_flag("--dry-run", quant.dry_run, "print each layer's row and the size footer, quantize nothing");
  qu->add_flag("--resume", quant.resume,
               "continue an interrupted run from <output>.resume (same inputs and parameters only)");
  qu->add_flag("--profile", quant.profile,
               "time every calibration phase and a plain forward+backward of each block beside it (report)");
  qu->add_flag_callback(
        "--help-params",
        [] {
          print_params_help();
          throw CLI::Success();
        },
        "list every parameter (--config keys, --set key=value) with its default, range and doc")
      ->trigger_on_parse();
  return qu;
}

CLI::App* add_inspect(CLI::App& app, InspectOptions& inspect) {
  auto* in = app.add_subcommand("inspect", "metadata, quantizable layers, outliers, packed sizes");
  in->add_option("model", inspect.model, "TorchScript model")->required();
  in->add_flag("--json", inspect.json, "machine-readable output");
  in->add_option("--threads", inspect.threads, "threads (0: all cores)");
  return in;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace vimvq::cli;
  CLI::App app{"vimvq: post-training vector quantization for Vision Mamba (ViM-VQ)"};
  app.require_subcommand(1);
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "log more");
  app.set_version_flag("--version", version_text,
                       "print the version, the LibTorch built against, the format versions");

  EvalOptions eval;
  QuantizeOptions quant;
  InspectOptions inspect;
  CLI::App* ev = add_eval(app, eval);
  CLI::App* qu = add_quantize(app, quant);
  CLI::App* in = add_inspect(app, inspect);

  CLI11_PARSE(app, argc, argv);
  vimvq::log::set_verbose(verbose);
  vimvq::install_interrupt_handler();
  try {
    keep_freed_memory_mapped();
    if (*ev) return run_eval(eval);
    if (*qu) return run_quantize(quant);
    if (*in) return run_inspect(inspect);
  } catch (const vimvq::Error& e) {
    std::fprintf(stderr, "vimvq: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::string what = e.what();
    std::fprintf(stderr, "vimvq: error: %s\n", what.substr(0, what.find('\n')).c_str());
    return 1;
  }
  return 0;
}
