// vimvq: post-training vector quantization of Vision Mamba models. This file only parses options
// (CLI11) into the subcommands' option structs and maps failures to one-line errors.
#include <cstdio>
#include <exception>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "src/cli/commands.h"
#include "vimvq/util/error.h"

int main(int argc, char** argv) {
  using namespace vimvq::cli;
  CLI::App app{"vimvq: post-training vector quantization for Vision Mamba (ViM-VQ)"};
  app.require_subcommand(1);
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "log more");

  EvalOptions eval;
  auto* ev = app.add_subcommand("eval", "top-1/top-5 of a model on an image folder");
  ev->add_option("model", eval.model, "TorchScript model (or packed checkpoint)")->required();
  ev->add_option("--data", eval.data, "ImageFolder tree, or a flat folder with --labels")->required();
  ev->add_option("--labels", eval.labels, "label file for a flat folder (ILSVRC ground-truth or 'file label')");
  ev->add_option("--label-base", eval.label_base, "first class index in --labels (default 1 for one-column files, else 0)");
  ev->add_option("--batch-size", eval.batch_size, "images per forward")->capture_default_str();
  ev->add_option("--threads", eval.threads, "compute and decode threads (0: all cores)")->capture_default_str();
  ev->add_option("--device", eval.device, "cpu, cuda or cuda:N")->capture_default_str();
  ev->add_option("--limit", eval.limit, "evaluate only the first N images (0: all)");
  ev->add_option("--reference", eval.reference, "second model: report top-1 agreement and mean KL");
  ev->add_option("--report", eval.report, "write a JSON report");
  ev->add_option("--predictions", eval.predictions, "write per-image top-5 predictions as CSV");
  ev->add_option("--on-bad-image", eval.on_bad_image, "fail or skip (skips are counted in the report)")
      ->capture_default_str();

  InspectOptions inspect;
  auto* in = app.add_subcommand("inspect", "metadata, quantizable layers, outliers, packed sizes");
  in->add_option("model", inspect.model, "TorchScript model")->required();
  in->add_flag("--json", inspect.json, "machine-readable output");
  in->add_option("--threads", inspect.threads, "threads (0: all cores)");

  CLI11_PARSE(app, argc, argv);
  spdlog::set_pattern("[%H:%M:%S] %v");
  spdlog::set_level(verbose ? spdlog::level::debug : spdlog::level::info);
  try {
    if (*ev) return run_eval(eval);
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
