#include "src/cli/progress.h"

#include <unistd.h>

#include <cstdio>

#include "vimvq/log/log.h"
#include "vimvq/util/strprintf.h"

namespace vimvq::cli {

Progress::Progress(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(total),
      tty_(::isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

Progress::~Progress() {
  if (!finished_ && tty_ && done_ > 0) std::fputc('\n', stderr);
}

void Progress::advance(int64_t n) {
  done_ += n;
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_draw_).count();
  if ((tty_ && since >= 0.2) || (!tty_ && since >= 10.0)) {
    last_draw_ = now;
    draw(false);
  }
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  if (tty_ || drawn_ != done_) draw(true);  // a log line for 100 % may already be out
}

void Progress::draw(bool final) {
  drawn_ = done_;
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = elapsed > 0 ? done_ / elapsed : 0.0;
  const double eta = rate > 0 ? (total_ - done_) / rate : 0.0;
  const double frac = total_ > 0 ? static_cast<double>(done_) / total_ : 1.0;
  if (tty_) {
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(frac * kWidth);
    std::string bar(filled, '#');
    bar.resize(kWidth, '.');
    std::fprintf(stderr, "\r%s [%s] %lld/%lld %s  %.1f %s/s  ETA %.0fs   ", label_.c_str(), bar.c_str(),
                 static_cast<long long>(done_), static_cast<long long>(total_), unit_.c_str(), rate,
                 unit_.c_str(), final ? 0.0 : eta);
    if (final) std::fputc('\n', stderr);
    std::fflush(stderr);
  } else {
    log::info(strprintf("%s: %lld/%lld %s (%.0f%%), %.1f %s/s, ETA %.0fs", label_.c_str(),
                        static_cast<long long>(done_), static_cast<long long>(total_), unit_.c_str(),
                        100 * frac, rate, unit_.c_str(), final ? 0.0 : eta));
  }
}

}  // namespace vimvq::cli
