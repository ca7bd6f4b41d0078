// Log lines ("[HH:MM:SS] message" on stdout). A separate target built without LibTorch's include
// directories: PyTorch 2.x ships its own fmt headers, and spdlog (Debian's, on fmt 9) must never
// be compiled against those. Callers format their messages themselves (vimvq::strprintf).
#pragma once

#include <string>

namespace vimvq::log {

void set_verbose(bool verbose);
void info(const std::string& message);
void warn(const std::string& message);
void debug(const std::string& message);
// Writes out what the logger buffers (before a process ends without running destructors).
void flush();

}  // namespace vimvq::log
