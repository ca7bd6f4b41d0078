// Option structs of the subcommands; main.cpp parses into them (CLI11), the commands run them.
// Kept free of LibTorch includes so that the CLI11 parsing unit compiles quickly.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace vimvq::cli {

struct EvalOptions {
  std::string model;
  std::string data;
  std::optional<std::string> labels;
  std::optional<int> label_base;
  std::optional<std::string> reference;
  std::optional<std::string> report;
  std::optional<std::string> predictions;
  int batch_size = 64;
  int threads = 0;  // 0: all cores
  std::string device = "cpu";
  int64_t limit = 0;
  std::string on_bad_image = "fail";
  bool dense = false;  // a packed model with dequantized fp32 weights instead of its codes
};

struct InspectOptions {
  std::string model;
  bool json = false;
  int threads = 0;
};

struct QuantizeOptions {
  std::string model;
  std::string calib;
  std::string output;
  std::optional<std::string> bits;  // numeric flags as text: the parameter table parses them
  std::optional<std::string> target_bpw;
  std::optional<std::string> method;
  bool no_hull_update = false;
  bool no_incremental = false;
  std::optional<std::string> config;
  std::vector<std::string> sets;  // key=value
  std::vector<std::string> include, exclude;
  int calib_size = 256;
  std::optional<std::string> batch_size;
  std::optional<std::string> iters;
  std::optional<std::string> seed;
  std::string device = "cpu";
  int threads = 0;
  std::optional<std::string> eval_data;
  int eval_batch_size = 100;
  int64_t eval_limit = 0;
  int64_t agreement_images = 256;  // without eval_data: images for the agreement check (0: none)
  std::optional<std::string> report;
  bool dry_run = false;
  bool profile = false;
  bool resume = false;              // continue from <output>.resume
  std::string rest_dtype = "fp16";  // storage of the unquantized parameters (format::parse_rest_dtype)
};

int run_eval(const EvalOptions& options);
int run_quantize(const QuantizeOptions& options);
int run_inspect(const InspectOptions& options);
void print_params_help();  // `vimvq quantize --help-params`

// `vimvq --version`: the tool's version, the LibTorch it was built against, whether the CUDA
// scan kernels are in, and the versions of the formats it reads and writes (for bug reports).
std::string version_text();

}  // namespace vimvq::cli
