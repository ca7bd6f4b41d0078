#include "vimvq/log/log.h"

#include <spdlog/spdlog.h>

namespace vimvq::log {
namespace {

// The pattern is set once, before the first line, whoever logs first.
spdlog::logger& logger() {
  static const bool configured = [] {
    spdlog::set_pattern("[%H:%M:%S] %v");
    return true;
  }();
  (void)configured;
  return *spdlog::default_logger_raw();
}

}  // namespace

void set_verbose(bool verbose) { logger().set_level(verbose ? spdlog::level::debug : spdlog::level::info); }
void info(const std::string& message) { logger().info("{}", message); }
void warn(const std::string& message) { logger().warn("{}", message); }
void debug(const std::string& message) { logger().debug("{}", message); }
void flush() { logger().flush(); }

}  // namespace vimvq::log
