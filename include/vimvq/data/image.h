// Decoding images by content (magic bytes), not by file extension: JPEG through libjpeg-turbo
// (baseline, progressive, grayscale, CMYK) and PNG (gray, RGB, RGBA, palette, 16-bit).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace vimvq::data {

// 8-bit interleaved pixels (HWC), 1 (gray) or 3 (RGB) channels.
struct Image {
  int width = 0;
  int height = 0;
  int channels = 0;
  std::vector<uint8_t> pixels;
  uint8_t at(int y, int x, int c) const {
    return pixels[(static_cast<size_t>(y) * width + x) * channels + c];
  }
};

// `name` only labels error messages. Throws vimvq::Error ("<name>: <problem>") for anything that
// is not a decodable JPEG or PNG. Alpha is dropped and palettes expanded as PIL's convert() does.
Image decode_image(const std::vector<uint8_t>& bytes, const std::string& name);
// The largest image file read_image reads: photographs are far below it, and a file above it is
// refused whatever it holds. The header is checked first, so a large file that is no image costs
// nothing.
inline constexpr uint64_t kMaxImageFileBytes = uint64_t{256} << 20;
Image read_image(const std::filesystem::path& path);

// Gray <-> RGB with PIL's rules (ITU-R 601-2 luma, L = (19595 R + 38470 G + 7471 B + 2^15) >> 16).
Image convert_channels(const Image& image, int channels);

}  // namespace vimvq::data
