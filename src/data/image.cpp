#include "vimvq/data/image.h"

#include <fstream>
#include <iterator>

#include "src/data/image_codecs.h"
#include "vimvq/util/error.h"

namespace vimvq::data {

namespace {

enum class Kind { kJpeg, kPng, kNone };

Kind sniff(const uint8_t* bytes, size_t size) {
  static const uint8_t kPng[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (size >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF) return Kind::kJpeg;
  if (size >= 8 && std::equal(kPng, kPng + 8, bytes)) return Kind::kPng;
  return Kind::kNone;
}

[[noreturn]] void not_an_image(size_t size, const std::string& name) {
  if (size == 0) throw Error(name + ": empty file");
  throw Error(name + ": not an image (neither JPEG nor PNG by content)");
}

}  // namespace

Image decode_image(const std::vector<uint8_t>& bytes, const std::string& name) {
  switch (sniff(bytes.data(), bytes.size())) {
    case Kind::kJpeg:
      return decode_jpeg(bytes, name);
    case Kind::kPng:
      return decode_png(bytes, name);
    case Kind::kNone:
      break;
  }
  not_an_image(bytes.size(), name);
}

// The header first: a large file that is no image is refused without reading it, and no file
// above the cap is read at all.
Image read_image(const std::filesystem::path& path) {
  const std::string name = path.string();
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw Error(name + ": cannot open");
  const std::streamoff size = in.tellg();
  if (size < 0) throw Error(name + ": cannot read its size");
  in.seekg(0);
  uint8_t header[8] = {};
  in.read(reinterpret_cast<char*>(header), sizeof header);
  if (sniff(header, static_cast<size_t>(in.gcount())) == Kind::kNone)
    not_an_image(static_cast<size_t>(size), name);
  if (static_cast<uint64_t>(size) > kMaxImageFileBytes)
    throw Error(name + ": image file of " + std::to_string(size >> 20) + " MiB, above the " +
                std::to_string(kMaxImageFileBytes >> 20) + " MiB an image may have");
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(bytes.data()), size);
  if (in.gcount() != size) throw Error(name + ": read failed (the file changed while it was read?)");
  return decode_image(bytes, name);
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
