// The quantization methods (docs/METHOD.md section 6) as one enum, parsed once where text comes in
// (options, config files, packed files) and printed back by name everywhere else.
#pragma once

#include <string>

namespace vimvq::vq {

enum class Method {
  kVimvq,   // convex combination + hull update + incremental confirmation (the default)
  kVq4dit,  // two fixed candidates, confirm above a threshold, harden a layer at a fraction
  kKmeans,  // weighted k-means codebook, nearest codeword; no calibration steps
  kRtn,     // per-row uniform levels; no calibration steps
};

// Throws vimvq::Error("<what> '<text>': use vimvq, vq4dit, kmeans or rtn").
Method parse_method(const std::string& text, const std::string& what = "--method");
const char* method_name(Method method);

// Methods that optimise soft weights block by block (the others quantize each layer at once).
bool is_calibrated(Method method);

}  // namespace vimvq::vq
