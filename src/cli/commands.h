// Option structs of the subcommands; main.cpp parses into them (CLI11), the commands run them.
// Kept free of LibTorch includes so that the CLI11 parsing unit compiles quickly.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

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
};

struct InspectOptions {
  std::string model;
  bool json = false;
  int threads = 0;
};

int run_eval(const EvalOptions& options);
int run_inspect(const InspectOptions& options);

}  // namespace vimvq::cli
