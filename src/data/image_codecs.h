// Internal: the per-format decoders behind decode_image.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "vimvq/data/image.h"

namespace vimvq::data {

// Larger images are refused before any pixel memory is allocated (a few hundred bytes of header
// can declare gigapixels).
inline constexpr int64_t kMaxImagePixels = int64_t{1} << 28;

Image decode_jpeg(const std::vector<uint8_t>& bytes, const std::string& name);
Image decode_png(const std::vector<uint8_t>& bytes, const std::string& name);

}  // namespace vimvq::data
