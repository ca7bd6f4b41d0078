#pragma once

#include <stdexcept>
#include <string>

namespace vimvq {

// Every user-facing failure: the message names the file (or option) and the problem, on one line.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace vimvq
