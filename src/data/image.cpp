#include "vimvq/data/image.h"

#include <fstream>
#include <iterator>

#include "src/data/image_codecs.h"
#include "vimvq/util/error.h"

namespace vimvq::data {

Image decode_image(const std::vector<uint8_t>& bytes, const std::string& name) {
  static const uint8_t kPng[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (bytes.size() >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF)
    return decode_jpeg(bytes, name);
  if (bytes.size() >= 8 && std::equal(kPng, kPng + 8, bytes.begin())) return decode_png(bytes, name);
  if (bytes.empty()) throw Error(name + ": empty file");
  throw Error(name + ": not an image (neither JPEG nor PNG by content)");
}

Image read_image(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path.string() + ": cannot open");
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return decode_image(bytes, path.string());
}

Image convert_channels(const Image& image, int channels) {
  if (image.channels == channels) return image;
  Image out;
  out.width = image.width;
  out.height = image.height;
  out.channels = channels;
  const size_t n = static_cast<size_t>(image.width) * image.height;
  out.pixels.resize(n * channels);
  if (image.channels == 1 && channels == 3) {
    for (size_t i = 0; i < n; ++i)
      out.pixels[i * 3] = out.pixels[i * 3 + 1] = out.pixels[i * 3 + 2] = image.pixels[i];
  } else if (image.channels == 3 && channels == 1) {
    for (size_t i = 0; i < n; ++i) {
      const uint32_t r = image.pixels[i * 3], g = image.pixels[i * 3 + 1], b = image.pixels[i * 3 + 2];
      out.pixels[i] = static_cast<uint8_t>((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16);
    }
  } else {
    throw Error("cannot convert an image from " + std::to_string(image.channels) + " to " +
                std::to_string(channels) + " channels");
  }
  return out;
}

}  // namespace vimvq::data
