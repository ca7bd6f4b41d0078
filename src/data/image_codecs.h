// Internal: the per-format decoders behind decode_image.
#pragma once

#include <string>
#include <vector>

#include "vimvq/data/image.h"

namespace vimvq::data {

Image decode_jpeg(const std::vector<uint8_t>& bytes, const std::string& name);
Image decode_png(const std::vector<uint8_t>& bytes, const std::string& name);

}  // namespace vimvq::data
