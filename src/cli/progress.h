// Progress for long loops: a bar with rate and ETA on a terminal, periodic log lines otherwise.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace vimvq::cli {

class Progress {
 public:
  Progress(std::string label, int64_t total, std::string unit);
  ~Progress();
  void advance(int64_t n);
  void finish();

 private:
  void draw(bool final);

  std::string label_, unit_;
  int64_t total_, done_ = 0, drawn_ = -1;
  bool tty_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace vimvq::cli
