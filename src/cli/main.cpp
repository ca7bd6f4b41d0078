// vimvq: post-training vector quantization of Vision Mamba models. This file only parses options
// (CLI11) into the subcommands' option structs and maps failures to one-line errors.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>

#include "src/cli/commands.h"
#include "src/cli/runtime.h"
#include "vimvq/log/log.h"
#include "vimvq/util/error.h"
#include "vimvq/util/output_set.h"

namespace {

using namespace vimvq::cli;

// Help fits an 80-column terminal: the options a first run needs stay in the default group, the
// rest go to named groups, and long descriptions break their own lines ('\n' keeps the indent).
constexpr std::size_t kHelpColumn = 28;

// Ends the process without static destructors. Those of the CUDA libraries LibTorch links (cuBLASLt,
// cuSPARSELt, libtorch_cuda) page in about 120 MB of their data at exit, even in a CPU run: on
// vim_base that was the largest step of `vimvq eval`'s peak RSS and of `vimvq --version`'s
// (docs/BENCHMARKS.md, "Compressed inference"). By now every output is committed or removed (those
// are scoped objects) and only the streams need flushing. AddressSanitizer builds end normally:
// LeakSanitizer runs at exit.
[[noreturn]] void end_process(int status) {
  vimvq::log::flush();
  std::fflush(nullptr);
#if defined(__SANITIZE_ADDRESS__)
  std::exit(status);
#else
  std::_Exit(status);
#endif
}

int run_command(CLI::App* ev, CLI::App* qu, CLI::App* in, const EvalOptions& eval,
                const QuantizeOptions& quant, const InspectOptions& inspect) {
  try {
    return_freed_memory();
    if (*ev) return run_eval(eval);
    if (*qu) return run_quantize(quant);
    if (*in) return run_inspect(inspect);
  } catch (const vimvq::Error& e) {
    std::fprintf(stderr, "vimvq: error: %s\n", e.what());
    return 1;
  } catch (const std::filesystem::filesystem_error& e) {
    // The path and the system's reason, not the library's "filesystem error: status: ..." text.
    const std::string path = e.path1().empty() ? std::string("(no path)") : e.path1().string();
    std::fprintf(stderr, "vimvq: error: %s: %s\n", path.c_str(), e.code().message().c_str());
    return 1;
  } catch (const std::exception& e) {
    std::string what = e.what();
    std::fprintf(stderr, "vimvq: error: %s\n", what.substr(0, what.find('\n')).c_str());
    return 1;
  }
  return 0;
}

CLI::App* add_eval(CLI::App& app, EvalOptions& eval) {
  auto* ev = app.add_subcommand("eval", "top-1/top-5 of a model or packed file on images");
  ev->add_option("model", eval.model, "TorchScript model or packed checkpoint (.vqpk)")->required();
  ev->add_option("--data", eval.data, "one folder per class, or a flat\nfolder with --labels")->required();
  ev->add_option("--labels", eval.labels,
                 "labels for a flat folder: one per line\n(sorted files) or 'file label'");
  ev->add_option("--reference", eval.reference, "second model: top-1 agreement, mean KL");
  ev->add_option("--report", eval.report, "write a JSON report");
  ev->add_option("--predictions", eval.predictions, "write per-image top-5 as CSV");
  ev->add_option("--device", eval.device, "cpu, cuda or cuda:N")->capture_default_str();
  ev->add_option("--threads", eval.threads, "compute and decode threads (0: all)")->capture_default_str();
  const std::string more = "More options";
  ev->add_option("--batch-size", eval.batch_size, "images per forward")->capture_default_str()->group(more);
  ev->add_option("--limit", eval.limit, "only the first N images (0: all)")->group(more);
  ev->add_option("--label-base", eval.label_base,
                 "first class index in --labels\n(default 1 for one column, else 0)")
      ->group(more);
  ev->add_flag("--dense", eval.dense, "run a packed model on dequantized fp32\nweights, not its codes")
      ->group(more);
  ev->add_option("--on-bad-image", eval.on_bad_image, "fail, or skip (and count) bad images")
      ->capture_default_str()
      ->group(more);
  return ev;
}

void add_calibration_options(CLI::App& qu, QuantizeOptions& quant) {
  const std::string group = "Calibration (defaults: --help-params)";
  qu.add_option("--calib-size", quant.calib_size, "calibration images (a seeded subset)")
      ->capture_default_str()
      ->group(group);
  qu.add_option("--iters", quant.iters, "optimisation steps per block")->type_name("INT")->group(group);
  qu.add_option("--batch-size", quant.batch_size, "images per optimisation step")
      ->type_name("INT")
      ->group(group);
  qu.add_option("--seed", quant.seed, "seed of subsets, k-means and batches")
      ->type_name("UINT64")
      ->group(group);
  qu.add_option("--set", quant.sets, "a parameter: key=value (repeatable)")->group(group);
  qu.add_option("--include", quant.include, "only layers matching these patterns\n(glob or substring)")
      ->group(group);
  qu.add_option("--exclude", quant.exclude, "skip layers matching these patterns")->group(group);
  qu.add_flag_callback(
        "--help-params",
        [] {
          print_params_help();
          throw CLI::Success();
        },
        "list every parameter: default, range, doc")
      ->trigger_on_parse()
      ->group(group);
  const std::string checks = "Checks and diagnostics";
  qu.add_option("--eval-limit", quant.eval_limit, "only the first N images of --eval-data")->group(checks);
  qu.add_option("--agreement-images", quant.agreement_images,
                "without --eval-data: agreement and KL\nagainst the original on this many\n"
                "left-out calibration-folder images\n(0: skip)")
      ->capture_default_str()
      ->group(checks);
  qu.add_flag("--profile", quant.profile, "time every phase, and a plain\nforward+backward per block")
      ->group(checks);
  const std::string ablations = "Ablations (docs/METHOD.md)";
  qu.add_flag("--no-hull-update", quant.no_hull_update, "keep every hull fixed")->group(ablations);
  qu.add_flag("--no-incremental", quant.no_incremental, "harden every code at once at the end")
      ->group(ablations);
}

CLI::App* add_quantize(CLI::App& app, QuantizeOptions& quant) {
  auto* qu = app.add_subcommand("quantize", "vector-quantize a Vim's block linear layers (ViM-VQ)");
  qu->add_option("model", quant.model, "TorchScript model")->required();
  qu->add_option("calib", quant.calib, "calibration images (any nesting,\nlabels not needed)")->required();
  qu->add_option("-o,--output", quant.output,
                 "packed checkpoint to write (default:\nMODEL.METHOD-wBITS.vqpk beside it)");
  qu->add_option("--bits", quant.bits, "index bits per weight: 1, 2, 3 (or 4)")->type_name("INT");
  qu->add_option("--target-bpw", quant.target_bpw,
                 "average bits per weight, codebooks\ncounted: a width per layer")
      ->type_name("FLOAT");
  qu->add_option("--method", quant.method, "vimvq (default), vq4dit, kmeans, rtn");
  qu->add_option("--device", quant.device, "cpu, cuda or cuda:N")->capture_default_str();
  qu->add_option("--threads", quant.threads, "threads (0: all cores)");
  qu->add_option("--config", quant.config, "JSON file of parameters (configs/)");
  qu->add_option("--report", quant.report, "write the JSON report (and a .md)");
  qu->add_option("--eval-data", quant.eval_data,
                 "labelled folder: report the original's\nand the packed model's accuracy");
  qu->add_option("--rest-dtype", quant.rest_dtype, "unquantized parameters as stored:\nfp16, bf16 or fp32")
      ->capture_default_str();
  qu->add_flag("--dry-run", quant.dry_run, "print the per-layer plan and sizes only");
  qu->add_flag("--resume", quant.resume, "continue an interrupted run from\n<output>.resume");
  add_calibration_options(*qu, quant);
  return qu;
}

CLI::App* add_inspect(CLI::App& app, InspectOptions& inspect) {
  auto* in = app.add_subcommand("inspect", "metadata, quantizable layers, outliers, packed sizes");
  in->add_option("model", inspect.model, "TorchScript model or packed checkpoint")->required();
  in->add_flag("--json", inspect.json, "machine-readable output");
  in->add_option("--threads", inspect.threads, "threads (0: all cores)");
  return in;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace vimvq::cli;
  CLI::App app{"vimvq: post-training vector quantization for Vision Mamba (ViM-VQ)"};
  app.require_subcommand(1);
  app.get_formatter()->column_width(kHelpColumn);  // before the subcommands, which share it
  app.footer("'vimvq COMMAND --help': a command's options. Docs: README.md, docs/.");
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "log more");
  app.set_version_flag("--version", version_text, "version, LibTorch, CUDA, format versions");

  EvalOptions eval;
  QuantizeOptions quant;
  InspectOptions inspect;
  CLI::App* ev = add_eval(app, eval);
  CLI::App* qu = add_quantize(app, quant);
  CLI::App* in = add_inspect(app, inspect);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    end_process(app.exit(e));  // --help and --version end here too
  }
  vimvq::log::set_verbose(verbose);
  vimvq::install_interrupt_handler();
  end_process(run_command(ev, qu, in, eval, quant, inspect));
}
