// PNG decoding with libpng, converted as PIL's convert("RGB"/"L") would: palettes expanded,
// alpha dropped (not composited), 16-bit samples reduced to their high byte.
#include <png.h>

#include <csetjmp>
#include <cstring>
#include <memory>

#include "src/data/image_codecs.h"
#include "vimvq/util/error.h"

namespace vimvq::data {
namespace {

struct Reader {
  png_structp png = nullptr;
  png_infop info = nullptr;
  const std::vector<uint8_t>* bytes = nullptr;
  size_t offset = 0;
  std::string message;
  Image image;
  std::vector<uint8_t> decoded;
  std::vector<png_bytep> rows;
  ~Reader() {
    if (png != nullptr) png_destroy_read_struct(&png, info != nullptr ? &info : nullptr, nullptr);
  }
};

void read_bytes(png_structp png, png_bytep out, png_size_t length) {
  auto* r = static_cast<Reader*>(png_get_io_ptr(png));
  if (r->offset + length > r->bytes->size()) png_error(png, "file is truncated");
  std::memcpy(out, r->bytes->data() + r->offset, length);
  r->offset += length;
}

void on_error(png_structp png, png_const_charp message) {
  auto* r = static_cast<Reader*>(png_get_error_ptr(png));
  r->message = message;
  png_longjmp(png, 1);
}

void on_warning(png_structp, png_const_charp) {}

}  // namespace

Image decode_png(const std::vector<uint8_t>& bytes, const std::string& name) {
  auto r = std::make_unique<Reader>();
  r->bytes = &bytes;
  r->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, r.get(), on_error, on_warning);
  if (r->png == nullptr) throw Error(name + ": out of memory reading PNG");
  r->info = png_create_info_struct(r->png);
  if (r->info == nullptr) throw Error(name + ": out of memory reading PNG");
  if (setjmp(png_jmpbuf(r->png))) throw Error(name + ": corrupt PNG: " + r->message);
  png_set_read_fn(r->png, r.get(), read_bytes);
  png_read_info(r->png, r->info);
  const int color = png_get_color_type(r->png, r->info);
  if (png_get_bit_depth(r->png, r->info) == 16) png_set_strip_16(r->png);
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(r->png);
  if (color == PNG_COLOR_TYPE_GRAY && png_get_bit_depth(r->png, r->info) < 8)
    png_set_expand_gray_1_2_4_to_8(r->png);
  png_set_interlace_handling(r->png);
  png_read_update_info(r->png, r->info);
  const int w = static_cast<int>(png_get_image_width(r->png, r->info));
  const int h = static_cast<int>(png_get_image_height(r->png, r->info));
  const int ch = png_get_channels(r->png, r->info);  // 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA
  if (w <= 0 || h <= 0 || static_cast<int64_t>(w) * h > kMaxImagePixels)
    throw Error(name + ": PNG dimensions out of range (" + std::to_string(w) + "x" + std::to_string(h) + ")");
  const size_t stride = png_get_rowbytes(r->png, r->info);
  r->decoded.resize(stride * h);
  r->rows.resize(h);
  for (int y = 0; y < h; ++y) r->rows[y] = r->decoded.data() + y * stride;
  png_read_image(r->png, r->rows.data());
  png_read_end(r->png, nullptr);
  const int out_ch = ch >= 3 ? 3 : 1;
  r->image.width = w;
  r->image.height = h;
  r->image.channels = out_ch;
  r->image.pixels.resize(static_cast<size_t>(w) * h * out_ch);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      for (int c = 0; c < out_ch; ++c)
        r->image.pixels[(static_cast<size_t>(y) * w + x) * out_ch + c] = r->rows[y][x * ch + c];
    }
  }
  return std::move(r->image);
}

}  // namespace vimvq::data
