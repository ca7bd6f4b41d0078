// JPEG decoding with libjpeg-turbo's defaults (islow DCT, fancy upsampling), as PIL uses them.
#include <csetjmp>
#include <cstdio>
#include <memory>
#include <string>

// clang-format off: jpeglib.h needs size_t and FILE declared before it.
#include <jerror.h>
#include <jpeglib.h>
// clang-format on

#include "src/data/image_codecs.h"
#include "vimvq/util/error.h"

namespace vimvq::data {
namespace {

struct ErrorManager {
  jpeg_error_mgr base;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void on_error(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<ErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

// Warnings (extraneous bytes...) are not errors, except the end of the data before the end of the
// image: libjpeg would fill the rest with grey, PIL refuses the file, and so do we.
void on_message(j_common_ptr cinfo, int level) {
  if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) on_error(cinfo);
}

// Lives on the heap so nothing with a destructor sits between setjmp and longjmp.
struct Decoder {
  jpeg_decompress_struct cinfo{};
  ErrorManager err{};
  bool created = false;
  Image image;
  std::vector<uint8_t> row;
  ~Decoder() {
    if (created) jpeg_destroy_decompress(&cinfo);
  }
};

}  // namespace

Image decode_jpeg(const std::vector<uint8_t>& bytes, const std::string& name) {
  auto d = std::make_unique<Decoder>();
  d->cinfo.err = jpeg_std_error(&d->err.base);
  d->err.base.error_exit = on_error;
  d->err.base.emit_message = on_message;
  if (setjmp(d->err.jump)) throw Error(name + ": corrupt JPEG: " + d->err.message);
  jpeg_create_decompress(&d->cinfo);
  d->created = true;
  jpeg_mem_src(&d->cinfo, bytes.data(), bytes.size());
  jpeg_read_header(&d->cinfo, TRUE);
  const bool cmyk = d->cinfo.jpeg_color_space == JCS_CMYK || d->cinfo.jpeg_color_space == JCS_YCCK;
  if (cmyk) {
    d->cinfo.out_color_space = JCS_CMYK;
  } else if (d->cinfo.num_components == 1) {
    d->cinfo.out_color_space = JCS_GRAYSCALE;
  } else {
    d->cinfo.out_color_space = JCS_RGB;
  }
  jpeg_calc_output_dimensions(&d->cinfo);
  if (static_cast<int64_t>(d->cinfo.output_width) * d->cinfo.output_height > kMaxImagePixels) {
    throw Error(name + ": JPEG dimensions out of range (" + std::to_string(d->cinfo.output_width) + "x" +
                std::to_string(d->cinfo.output_height) + ")");
  }
  jpeg_start_decompress(&d->cinfo);
  const int w = static_cast<int>(d->cinfo.output_width), h = static_cast<int>(d->cinfo.output_height);
  const int in_ch = d->cinfo.output_components;
  d->image.width = w;
  d->image.height = h;
  d->image.channels = cmyk ? 3 : in_ch;
  d->image.pixels.resize(static_cast<size_t>(w) * h * d->image.channels);
  d->row.resize(static_cast<size_t>(w) * in_ch);
  const bool inverted = d->cinfo.saw_Adobe_marker;  // Adobe writes CMYK inverted
  while (d->cinfo.output_scanline < d->cinfo.output_height) {
    const size_t y = d->cinfo.output_scanline;
    JSAMPROW target = cmyk ? d->row.data() : &d->image.pixels[y * w * in_ch];
    jpeg_read_scanlines(&d->cinfo, &target, 1);
    if (!cmyk) continue;
    for (int x = 0; x < w; ++x) {
      const uint8_t* p = &d->row[static_cast<size_t>(x) * 4];
      const int k = inverted ? p[3] : 255 - p[3];
      for (int c = 0; c < 3; ++c) {
        const int v = inverted ? p[c] : 255 - p[c];  // v = 255 - ink
        d->image.pixels[(y * w + x) * 3 + c] = static_cast<uint8_t>((v * k + 127) / 255);
      }
    }
  }
  jpeg_finish_decompress(&d->cinfo);
  return std::move(d->image);
}

}  // namespace vimvq::data
