// vimvq quantize: calibrate, pack, report. Parses nothing itself: options arrive in QuantizeOptions.
#include <limits.h>
#include <sys/resource.h>
#include <torch/script.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>

#include "src/cli/agreement.h"
#include "src/cli/calibration_images.h"
#include "src/cli/commands.h"
#include "src/cli/progress.h"
#include "src/cli/resume_state.h"
#include "src/cli/runtime.h"
#include "vimvq/calib/allocation.h"
#include "vimvq/calib/calibrate.h"
#include "vimvq/calib/matmul_precision.h"
#include "vimvq/format/load_model.h"
#include "vimvq/format/packed_checkpoint.h"
#include "vimvq/log/log.h"
#include "vimvq/report/evaluate.h"
#include "vimvq/report/quantize_report.h"
#include "vimvq/util/error.h"
#include "vimvq/util/output_set.h"
#include "vimvq/util/strprintf.h"

namespace vimvq::cli {
namespace {

using Clock = std::chrono::steady_clock;

// Precedence: defaults < --config < explicit flags < --set. Every value passes the table's checks.
calib::CalibrationParams resolve_params(const QuantizeOptions& o) {
  calib::CalibrationParams p;
  if (o.config) {
    if (std::filesystem::is_directory(*o.config))
      throw Error(*o.config + ": is a folder, expected a JSON file (--config)");
    std::ifstream in(*o.config);
    if (!in) throw Error(*o.config + ": cannot open config");
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      throw Error(*o.config + ": not valid JSON (" + e.what() + ")");
    }
    calib::apply_json(p, j, *o.config);
  }
  // Numeric flags arrive as text and go through the table like --set: its ranges hold for all.
  if (o.bits) calib::set_param_text(p, "bits", *o.bits, "--bits " + *o.bits);
  if (o.target_bpw) {
    if (o.bits) throw Error("--bits and --target-bpw: give one (a target chooses each layer's width)");
    calib::set_param_text(p, "target_bpw", *o.target_bpw, "--target-bpw " + *o.target_bpw);
  }
  if (o.method) calib::set_param_json(p, "method", *o.method, "--method '" + *o.method + "'");
  if (o.no_hull_update) p.hull_update = false;
  if (o.no_incremental) p.incremental = false;
  if (o.batch_size) calib::set_param_text(p, "batch_size", *o.batch_size, "--batch-size " + *o.batch_size);
  if (o.iters) calib::set_param_text(p, "iterations", *o.iters, "--iters " + *o.iters);
  if (o.seed) calib::set_param_text(p, "seed", *o.seed, "--seed " + *o.seed);
  if (!o.include.empty()) p.include = o.include;
  if (!o.exclude.empty()) p.exclude = o.exclude;
  for (const auto& kv : o.sets) {
    const auto eq = kv.find('=');
    if (eq == std::string::npos) throw Error("--set " + kv + ": expected key=value");
    calib::set_param(p, kv.substr(0, eq), kv.substr(eq + 1));
  }
  calib::validate(p);
  p.e2e_steps = calib::e2e_steps_of(p);  // what runs is what the provenance and the reports record
  if (p.e2e_extra_images > 0 && p.e2e_steps == 0)
    throw Error("e2e_extra_images: the images are the end-to-end stage's; set e2e_steps too");
  return p;
}

vq::SizeTotals totals_of(const std::vector<calib::LayerRecord>& layers) {
  vq::SizeTotals t;
  for (const auto& l : layers) t.add(l.plan);
  return t;
}

// What was produced must be what was planned: the dry run and the size figures rely on it.
void check_against_plan(const std::vector<calib::LayerRecord>& planned,
                        const std::vector<calib::LayerRecord>& done) {
  bool same = planned.size() == done.size();
  for (size_t i = 0; same && i < planned.size(); ++i)
    same = planned[i].name == done[i].name && planned[i].plan == done[i].plan;
  if (!same) throw Error("internal error: the quantized layers differ from their size plan");
}

report::AccuracyRecord evaluate_both(const QuantizeOptions& o, const std::string& packed_path,
                                     const model::ModelMetadata& meta, int threads,
                                     const c10::Device& device) {
  data::Dataset ds = data::open_dataset(*o.eval_data, std::nullopt, meta.class_names);
  if (o.eval_limit > 0 && static_cast<size_t>(o.eval_limit) < ds.samples.size())
    ds.samples.resize(o.eval_limit);
  report::check_labels(ds, meta, *o.eval_data);
  report::EvalSettings es;
  es.batch_size = o.eval_batch_size;
  es.threads = threads;
  report::AccuracyRecord a;
  a.data = *o.eval_data;
  const auto er = compare_with_original(packed_path, o.model, ds, es, device, "eval", a);
  a.fp_top1 = er.reference_metrics->top1();
  a.fp_top5 = er.reference_metrics->top5();
  a.top1_correct = er.metrics.top1_correct();
  a.top5 = er.metrics.top5();
  return a;
}

int dry_run(const std::vector<calib::LayerRecord>& planned, int num_blocks, int64_t parameters,
            format::RestDtype rest) {
  for (const auto& l : planned) std::printf("%s\n", report::layer_row(l, num_blocks).c_str());
  std::printf("%s\n", report::size_footer(totals_of(planned), planned.size(), parameters,
                                          format::rest_dtype_bytes(rest))
                          .c_str());
  return 0;
}

// Without -o: beside the model, named for it, the method and the bits (vim_t.pt ->
// vim_t.vimvq-w2.vqpk), so that runs at other settings do not overwrite each other.
std::string default_output(const std::string& model, const calib::CalibrationParams& p) {
  std::filesystem::path path(model);
  const std::string width =
      p.target_bpw > 0 ? strprintf("bpw%g", p.target_bpw) : "w" + std::to_string(p.bits);
  path.replace_filename(path.stem().string() + "." + vq::method_name(p.method) + "-" + width + ".vqpk");
  return path.string();
}

// A regular output file (or a new one) can be read back before the commit and has a resume state
// beside it; a device or a pipe is written through at the end, and keeps no state.
bool output_is_a_file(const std::string& output) {
  std::error_code ec;
  const auto st = std::filesystem::status(output, ec);
  return !std::filesystem::exists(st) || std::filesystem::is_regular_file(st);
}

// Where the run starts: the resume state with --resume (refused when made with other inputs),
// otherwise the first block.
std::optional<calib::ResumePoint> resume_point(const QuantizeOptions& o, const std::string& state,
                                               const std::string& fingerprint) {
  const bool exists = std::filesystem::exists(state);
  if (o.resume && exists) {
    calib::ResumePoint point = read_resume_state(state, fingerprint);
    log::info(strprintf("%s: resuming at block %d (%zu blocks done)", state.c_str(), point.next_block,
                        point.done.blocks.size()));
    return point;
  }
  if (o.resume) log::warn(state + ": no resume state; starting at the first block");
  if (!o.resume && exists)
    log::warn(state + ": an earlier run's resume state, replaced as this run goes (--resume continues it)");
  return std::nullopt;
}

// A resume state is checked as strictly as a packed file: its layers must be the plan's first ones,
// in order, with the plan's blocks, shapes and sizes, and its next block must come right after
// them. (Its checksums and fingerprint only say it was not damaged by accident.)
void check_resume_point(const calib::ResumePoint& point, const std::vector<calib::LayerRecord>& planned,
                        int num_blocks, const std::string& state) {
  auto fail = [&](const std::string& problem) {
    return Error(state + ": resume state: " + problem + "; run without --resume to start again");
  };
  const auto& done = point.done.layer_records;
  if (point.next_block < 1 || point.next_block > num_blocks)
    throw fail(strprintf("next block %d is outside 1..%d", point.next_block, num_blocks));
  if (done.size() > planned.size()) throw fail("it holds more layers than this run plans");
  for (size_t i = 0; i < done.size(); ++i) {
    const calib::LayerRecord& want = planned[i];
    if (done[i].name != want.name || done[i].block != want.block || !(done[i].plan == want.plan) ||
        point.done.layers[i].name != want.name || point.done.layers[i].shape != want.shape)
      throw fail(strprintf("layer %zu is %s (block %d), where this run plans %s (block %d)", i,
                           point.done.layers[i].name.c_str(), done[i].block, want.name.c_str(), want.block));
    if (want.block >= point.next_block)
      throw fail(strprintf("layer %s of block %d lies after its next block, %d", want.name.c_str(),
                           want.block, point.next_block));
  }
  if (done.size() < planned.size() && planned[done.size()].block < point.next_block)
    throw fail(strprintf("the layers of block %d are missing", planned[done.size()].block));
}

calib::CalibrationResult calibrate(model::VimModel& model, const at::Tensor& images,
                                   const at::Tensor& stage_extra, const calib::CalibrationParams& p,
                                   const std::vector<calib::LayerRecord>& planned, calib::Profiler* profiler,
                                   const calib::ResumePoint* resume,
                                   const decltype(calib::Callbacks::on_checkpoint)& checkpoint) {
  const int num_blocks = model.metadata().num_blocks;
  std::set<int> blocks;
  for (const auto& l : planned) blocks.insert(l.block);
  const int done = resume ? static_cast<int>(resume->done.blocks.size()) : 0;
  const int64_t steps = calib::planned_steps(p, static_cast<int>(blocks.size()) - done);
  std::unique_ptr<Progress> progress;
  if (steps > 0) progress = std::make_unique<Progress>("calibrate", steps, "step");
  calib::Callbacks cb;
  cb.on_layer = [&](const calib::LayerRecord& l) { log::info(report::layer_row(l, num_blocks)); };
  cb.on_block = [&](const calib::BlockRecord& b) { log::info(report::block_row(b, num_blocks, p.method)); };
  cb.advance = [&](int64_t n) {
    if (progress) progress->advance(n);
  };
  cb.on_checkpoint = checkpoint;
  cb.on_end_to_end = [&](int steps) {
    log::info(
        strprintf("end-to-end stage: %d steps on every codebook (codes fixed)%s against the "
                  "full-precision logits",
                  steps, p.e2e_rest ? " and the blocks' norms, biases and D" : ""));
  };
  calib::CalibrationResult result =
      calib::quantize_model(model, images, p, cb, profiler, resume, stage_extra);
  if (progress) progress->finish();
  if (const auto& e = result.end_to_end)
    log::info(
        strprintf("end-to-end stage: mean KL against full precision %.4g -> %.4g on %lld of the "
                  "calibration images it trained on (in-sample), %.1f s",
                  e->kl_before, e->kl_after, static_cast<long long>(e->images), e->seconds));
  check_against_plan(planned, result.layer_records);
  return result;
}

// The calibration with its resume state beside the output: continued from it with --resume,
// refreshed after each block (SIGINT then says where it is).
calib::CalibrationResult calibrate_resumably(const QuantizeOptions& o, const calib::CalibrationParams& p,
                                             model::VimModel& model, const CalibrationImages& calibration,
                                             const std::vector<calib::LayerRecord>& planned, int threads,
                                             const c10::Device& device, bool resumable,
                                             calib::Profiler* profiler) {
  const std::string state = resume_state_path(o.output);
  if (o.resume && !resumable)
    throw Error(o.output +
                ": no resume state is kept beside it (not a regular file, or no room in its name)");
  const std::string fingerprint =
      run_fingerprint(o.model, calibration.images, calibration.extra_images, p, device.str(), threads);
  const auto resume = resumable ? resume_point(o, state, fingerprint) : std::nullopt;
  if (resume) check_resume_point(*resume, planned, model.metadata().num_blocks, state);
  auto checkpoint = [&](int next_block, const calib::CalibrationResult& done, const at::Tensor& generator) {
    if (!resumable) return;
    write_resume_state(state, fingerprint, next_block, done, generator,
                       strprintf("quantize of %s stopped; blocks 0 to %d are kept in %s: run the same "
                                 "command with --resume to continue",
                                 o.model.c_str(), next_block - 1, state.c_str()));
  };
  const at::Tensor extra =
      calibration.extra_images.defined() ? calibration.extra_images.to(device) : at::Tensor();
  return calibrate(model, calibration.images.to(device), extra, p, planned, profiler,
                   resume ? &*resume : nullptr, checkpoint);
}

format::PackedCheckpoint packed_checkpoint(const QuantizeOptions& o, const calib::CalibrationParams& p,
                                           model::VimModel& model, calib::CalibrationResult& result,
                                           const CalibrationImages& calibration) {
  format::PackedCheckpoint packed;
  packed.layers = std::move(result.layers);
  packed.rest = format::parse_rest_dtype(o.rest_dtype);
  packed.architecture = format::architecture_without(model.module(), packed.layers, packed.rest);
  // Timings stay in the report: the packed file is byte-identical for the same inputs and seed.
  packed.provenance = {
      {"tool", "vimvq"},
      {"tool_version", VIMVQ_VERSION},
      {"source_model", std::filesystem::path(o.model).filename().string()},
      {"bits", p.bits},
      {"layer_bits", p.layer_bits},
      {"layer_codewords", p.layer_codewords},
      {"method", vq::method_name(p.method)},
      {"params", calib::to_json(p)},
      {"seed", p.seed},
      {"calibration",
       {{"images", calibration.images.size(0)}, {"list_hash_fnv1a64", calibration.list_hash}}}};
  return packed;
}

double peak_memory_mb() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024.0;
}

std::filesystem::path markdown_beside(const std::string& report) {
  return std::filesystem::path(report).replace_extension(".md");
}

// Whether a file name fits the file system's limit (NAME_MAX): the resume state adds '.resume'.
bool name_fits(const std::string& path) {
  return std::filesystem::path(path).filename().string().size() <= NAME_MAX;
}

// Every file the run reads, and the ones it will write: refused now if any two are the same.
// output_file: -o is a regular file (or a new one), as output_is_a_file found once for the run;
// resumable: a resume state is kept beside it.
void declare_files(const QuantizeOptions& o, bool output_file, bool resumable, OutputSet& files) {
  files.add_input(o.model, "model");
  files.add_input(o.calib, "calibration folder");
  if (o.config) files.add_input(*o.config, "--config file");
  if (o.eval_data) files.add_input(*o.eval_data, "--eval-data folder");
  files.add_output(o.output, "packed output (-o)");
  if (o.eval_data && !output_file)
    throw Error(o.output +
                ": --eval-data evaluates the packed file as written, so -o must be a regular file");
  if (resumable) files.add_output(resume_state_path(o.output), "resume state beside -o");
  if (o.report) {
    files.add_output(*o.report, "--report");
    files.add_output(markdown_beside(*o.report), "Markdown report beside --report");
  }
}

// The Markdown summary on stdout; with --report, the JSON and the Markdown beside it.
void stage_reports(const QuantizeOptions& o, const report::QuantizeReport& r, OutputSet& files) {
  const std::string md = report::to_markdown(r);
  std::printf("\n%s", md.c_str());
  if (!o.report) return;
  files.stage(*o.report, report::to_json(r).dump(2) + "\n");
  files.stage(markdown_beside(*o.report), md);
}

// One line: what the run will quantize, and at how many bits per weight.
void log_plan(const std::string& path, const model::VimModel& model,
              const std::vector<calib::LayerRecord>& planned, const calib::CalibrationParams& p) {
  const vq::SizeTotals totals = totals_of(planned);
  const std::string widths =
      p.target_bpw > 0 ? strprintf("widths for %g bpw", p.target_bpw) : strprintf("%d bits", p.bits);
  log::info(strprintf(
      "%s: %zu of %zu quantizable layers, %lld weights; %s at %s: %.3f index + %.3f "
      "codebook bpw",
      path.c_str(), planned.size(), model.quantizable_layers().size(), static_cast<long long>(totals.weights),
      vq::method_name(p.method), widths.c_str(), totals.index_bpw(), totals.codebook_bpw()));
}

// --target-bpw: each layer's width (and codebook cap) from its Fisher-weighted errors; the layers
// planned again.
std::vector<calib::LayerRecord> allocate_to_target(model::VimModel& model,
                                                   const CalibrationImages& calibration,
                                                   calib::CalibrationParams& p,
                                                   const std::vector<calib::LayerRecord>& planned) {
  const auto t0 = Clock::now();
  const int64_t images = std::min<int64_t>(p.allocation_images, calibration.images.size(0));
  log::info(strprintf("--target-bpw %g: pricing each layer's widths by its diagonal Fisher on %lld images",
                      p.target_bpw, static_cast<long long>(images)));
  const auto options =
      calib::measure_width_options(model, calibration.images.to(model.device()), p, planned, images);
  const calib::Allocation a = calib::allocate_widths(options, p.target_bpw);
  p.layer_bits = a.bits;
  p.layer_codewords = a.max_codewords;
  auto replanned = calib::plan_layers(model, p);
  // By the index bits each layer ends with: a capped codebook takes a width below its nominal one
  // (1 bit capped to 4 codewords of 8 is 0.25 bits a weight).
  std::map<std::tuple<double, int, int64_t>, int> layers_at;  // (index bits per weight, d, k)
  for (const auto& l : replanned)
    ++layers_at[{static_cast<double>(l.plan.code_bits) / l.plan.d, l.plan.d, l.plan.k}];
  std::string mix;
  for (const auto& [width, count] : layers_at)
    mix += strprintf("%s%d at %g index bits (d %d, k %lld)", mix.empty() ? "" : ", ", count,
                     std::get<0>(width), std::get<1>(width), static_cast<long long>(std::get<2>(width)));
  log::info(strprintf("allocation: %.4f bits per weight (target %g): %s; %.1f s", a.bpw(), p.target_bpw,
                      mix.c_str(), std::chrono::duration<double>(Clock::now() - t0).count()));
  return replanned;
}

CalibrationImages load_and_log_calibration(const QuantizeOptions& o, const calib::CalibrationParams& p,
                                           const model::ModelMetadata& meta, int threads) {
  CalibrationImages calibration =
      load_calibration_images(o.calib, o.calib_size, p.seed, meta, threads, p.e2e_extra_images);
  const std::string stage = calibration.extra_images.defined()
                                ? strprintf(", and %lld more for the end-to-end stage",
                                            static_cast<long long>(calibration.extra_images.size(0)))
                                : "";
  log::info(strprintf("calibration: %lld images from %s%s (list hash %s)",
                      static_cast<long long>(calibration.images.size(0)), o.calib.c_str(), stage.c_str(),
                      calibration.list_hash.c_str()));
  return calibration;
}

// Refuses parameters the model's device cannot honour; warns where they cost time.
void check_model_and_device(const model::VimModel& model, const calib::CalibrationParams& p) {
  calib::check_model_supports(model, p);
  if (p.step_matmuls != calib::MatmulPrecision::kBf16 || !model.device().is_cpu()) return;
  if (!calib::cpu_runs_bf16_matmuls())
    log::warn(
        "step_matmuls = bf16: oneDNN keeps this CPU's products in fp32 (tried at start), so the steps "
        "run at fp32 precision and the option brings no bf16 speed-up here");
  else if (!calib::cpu_has_amx_bf16())
    log::warn(
        "step_matmuls = bf16 on a CPU without AMX: oneDNN's bf16 products can be slower than fp32 there");
}

void record_calibration(const QuantizeOptions& o, const CalibrationImages& calibration,
                        const calib::CalibrationResult& result, int64_t parameters,
                        const format::SizeBreakdown& sizes, report::QuantizeReport& r) {
  r.model = o.model;
  r.output = o.output;
  r.calibration_folder = o.calib;
  r.calibration_images = calibration.images.size(0);
  r.list_hash = calibration.list_hash;
  r.layers = result.layer_records;
  r.blocks = result.blocks;
  r.end_to_end = result.end_to_end;
  r.size.parameters = parameters;
  r.size.quantized = totals_of(result.layer_records);
  r.size.packed_bytes = sizes.file_bytes;
  r.size.code_bytes = sizes.code_bytes;
  r.size.codebook_bytes = sizes.codebook_bytes;
  r.size.architecture_bytes = sizes.architecture_bytes;
}

// What the packed model holds when loaded to run compressed, as vimvq eval loads it.
void record_resident(const std::string& output, const format::PackedCheckpoint& packed,
                     report::SizeRecord& size) {
  const c10::Device cpu("cpu");
  const auto resident =
      model::VimModel::from_module(output, format::compressed(packed, cpu, nullptr), cpu).resident_bytes();
  size.rest_dtype = format::rest_dtype_name(packed.rest);
  size.resident_codes = resident.codes;
  size.resident_codebooks = resident.codebooks;
  size.resident_rest = resident.rest;
}

// What needs no file: refused before anything is loaded.
void check_quantize_options(const QuantizeOptions& o) {
  if (o.agreement_images < 0) throw Error("--agreement-images must be 0 (no check) or more");
  try {
    format::parse_rest_dtype(o.rest_dtype);
  } catch (const Error& e) {
    throw Error(std::string("--rest-dtype: ") + e.what());
  }
  if (o.eval_limit < 0)
    throw Error("--eval-limit " + std::to_string(o.eval_limit) + ": must be 0 (all images) or more");
  if (format::is_packed_file(o.model))
    throw Error(o.model +
                ": is a packed checkpoint, already quantized; quantize the original TorchScript model "
                "(quantizing dequantized weights again would compound both errors)");
}

// The outputs in place and the resume state gone, or neither: interruptions wait for the end.
void commit_outputs(const QuantizeOptions& o, OutputSet& files, bool resumable) {
  const std::string written =
      "wrote " + o.output + (o.report ? " and " + *o.report + " (+ .md)" : std::string());
  {
    const InterruptsDeferred deferred;
    files.commit("quantize of " + o.model + " finished: " + written);
    std::error_code ec;
    if (resumable) std::filesystem::remove(resume_state_path(o.output), ec);  // nothing left to resume
  }
  log::info(written);
}

// The packed file staged for the commit, its sizes and resident bytes in the report.
void stage_packed(const QuantizeOptions& o, model::VimModel& model, calib::CalibrationResult& result,
                  const CalibrationImages& calibration, OutputSet& files, report::QuantizeReport& r) {
  format::SizeBreakdown sizes;
  const format::PackedCheckpoint packed = packed_checkpoint(o, r.params, model, result, calibration);
  files.stage(o.output, format::packed_bytes(o.output, packed, &sizes));
  log::info(strprintf("packed %s (%.3f MB: codes %.3f, codebooks %.3f, architecture + %s parameters %.3f)",
                      o.output.c_str(), sizes.file_bytes / 1e6, sizes.code_bytes / 1e6,
                      sizes.codebook_bytes / 1e6, format::rest_dtype_name(packed.rest),
                      sizes.architecture_bytes / 1e6));
  record_calibration(o, calibration, result, model.num_parameters(), sizes, r);
  record_resident(o.output, packed, r.size);
}

}  // namespace

void print_params_help() { std::fputs(calib::params_help().c_str(), stdout); }

int run_quantize(const QuantizeOptions& given) {
  const auto t_start = Clock::now();
  QuantizeOptions o = given;
  check_quantize_options(o);
  const int threads = configure_threads(o.threads);
  const c10::Device device = parse_device(o.device);
  report::QuantizeReport r;
  r.params = resolve_params(o);
  if (o.output.empty()) o.output = default_output(o.model, r.params);
  const calib::CalibrationParams& p = r.params;
  auto model = format::load_model(o.model, device);
  keep_freed_memory_mapped();
  const auto& meta = model.metadata();
  check_model_and_device(model, p);
  auto planned = calib::plan_layers(model, p);
  if (planned.empty())
    throw Error("no quantizable layer of " + o.model + " matches the --include / --exclude patterns");
  if (given.output.empty()) log::info("output (no -o given): " + o.output);
  if (o.dry_run) {
    if (p.target_bpw > 0)
      planned = allocate_to_target(model, load_and_log_calibration(o, p, meta, threads), r.params, planned);
    log_plan(o.model, model, planned, p);
    return dry_run(planned, meta.num_blocks, model.num_parameters(), format::parse_rest_dtype(o.rest_dtype));
  }
  const bool output_file = output_is_a_file(o.output);
  const bool resumable = output_file && name_fits(resume_state_path(o.output));
  OutputSet files;
  declare_files(o, output_file, resumable, files);
  if (!resumable)
    log::info(o.output + (output_file ? ": the name leaves no room for '.resume'" : ": not a regular file") +
              ", so no resume state is kept (an interrupted run starts again)");
  set_interrupt_message("quantize of " + o.model + " stopped; nothing was written");

  const CalibrationImages calibration = load_and_log_calibration(o, p, meta, threads);
  if (p.target_bpw > 0) planned = allocate_to_target(model, calibration, r.params, planned);
  log_plan(o.model, model, planned, p);
  std::optional<calib::Profiler> profiler;
  if (o.profile) profiler.emplace(device);
  calib::CalibrationResult result = calibrate_resumably(o, p, model, calibration, planned, threads, device,
                                                        resumable, profiler ? &*profiler : nullptr);
  log::debug(cpu_block_cache_summary());
  stage_packed(o, model, result, calibration, files, r);
  if (o.eval_data) {
    r.accuracy = evaluate_both(o, files.staged_path(o.output).string(), meta, threads, device);
  } else if (o.agreement_images > 0 && output_file) {
    r.agreement = measure_agreement(files.staged_path(o.output).string(), o.model, o.calib, calibration,
                                    o.agreement_images, threads, device);
  }
  if (profiler) r.profile = profiler->profile();
  r.peak_memory_mb = peak_memory_mb();
  r.calibration_seconds = result.seconds;
  r.wall_seconds = std::chrono::duration<double>(Clock::now() - t_start).count();
  stage_reports(o, r, files);
  commit_outputs(o, files, resumable);
  return 0;
}

}  // namespace vimvq::cli
