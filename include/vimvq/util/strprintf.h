// printf into a std::string, for report rows and log lines.
#pragma once

#include <cstdio>
#include <string>

namespace vimvq {

template <typename... Args>
std::string strprintf(const char* format, Args... args) {
  const int n = std::snprintf(nullptr, 0, format, args...);
  if (n <= 0) return {};
  std::string out(static_cast<size_t>(n) + 1, '\0');
  std::snprintf(out.data(), out.size(), format, args...);
  out.resize(static_cast<size_t>(n));
  return out;
}

}  // namespace vimvq
