#include "vimvq/data/preprocess.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "vimvq/util/error.h"

namespace vimvq::data {
namespace {

// PIL's bicubic kernel (a = -0.5), support 2.
double bicubic(double x) {
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

constexpr int kPrecisionBits = 32 - 8 - 2;  // PIL's fixed point for 8-bit resampling

struct Coefficients {
  int ksize = 0;
  std::vector<int> bounds;  // per output pixel: first input index, count
  std::vector<int32_t> k;   // fixed-point weights, ksize per output pixel
};

// PIL's precompute_coeffs + normalize_coeffs_8bpc.
Coefficients coefficients(int in_size, int out_size) {
  const double scale = static_cast<double>(in_size) / out_size;
  const double filterscale = std::max(scale, 1.0);
  const double support = 2.0 * filterscale;
  Coefficients c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.bounds.resize(out_size * 2);
  c.k.assign(static_cast<size_t>(out_size) * c.ksize, 0);
  std::vector<double> w(c.ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      w[x] = bicubic((x + xmin - center + 0.5) * ss);
      ww += w[x];
    }
    for (int x = 0; x < xmax; ++x) {
      const double v = ww != 0.0 ? w[x] / ww : w[x];
      c.k[static_cast<size_t>(xx) * c.ksize + x] =
          static_cast<int32_t>(v < 0 ? -0.5 + v * (1 << kPrecisionBits) : 0.5 + v * (1 << kPrecisionBits));
    }
    c.bounds[xx * 2] = xmin;
    c.bounds[xx * 2 + 1] = xmax;
  }
  return c;
}

uint8_t clip8(int64_t v) {
  v >>= kPrecisionBits;
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// One separable pass; `horizontal` picks the axis. Output is 8-bit, as PIL's intermediate image.
Image resample_pass(const Image& in, int out_size, bool horizontal) {
  const Coefficients c = coefficients(horizontal ? in.width : in.height, out_size);
  Image out;
  out.channels = in.channels;
  out.width = horizontal ? out_size : in.width;
  out.height = horizontal ? in.height : out_size;
  out.pixels.resize(static_cast<size_t>(out.width) * out.height * out.channels);
  const int ch = in.channels;
  for (int y = 0; y < out.height; ++y) {
    for (int x = 0; x < out.width; ++x) {
      const int o = horizontal ? x : y;
      const int first = c.bounds[o * 2], count = c.bounds[o * 2 + 1];
      const int32_t* k = &c.k[static_cast<size_t>(o) * c.ksize];
      for (int ci = 0; ci < ch; ++ci) {
        int64_t ss = int64_t{1} << (kPrecisionBits - 1);
        for (int i = 0; i < count; ++i) {
          const int sx = horizontal ? first + i : x, sy = horizontal ? y : first + i;
          ss += static_cast<int64_t>(in.pixels[(static_cast<size_t>(sy) * in.width + sx) * ch + ci]) * k[i];
        }
        out.pixels[(static_cast<size_t>(y) * out.width + x) * ch + ci] = clip8(ss);
      }
    }
  }
  return out;
}

}  // namespace

Image resize_bicubic(const Image& image, int width, int height) {
  if (width <= 0 || height <= 0) throw Error("resize: target size must be positive");
  Image out = image.width != width ? resample_pass(image, width, true) : image;
  if (out.height != height) out = resample_pass(out, height, false);
  return out;
}

Image resize_shorter_side(const Image& image, int size) {
  const int w = image.width, h = image.height;
  const int shorter = std::min(w, h), longer = std::max(w, h);
  if (shorter == size) return image;
  const int new_long = static_cast<int>(static_cast<int64_t>(size) * longer / shorter);
  return w <= h ? resize_bicubic(image, size, new_long) : resize_bicubic(image, new_long, size);
}

Image center_crop(const Image& image, int size) {
  Image out;
  out.width = out.height = size;
  out.channels = image.channels;
  out.pixels.assign(static_cast<size_t>(size) * size * image.channels, 0);
  // torchvision pads a smaller image symmetrically (left/top get the floor), then crops.
  const int pad_left = image.width < size ? (size - image.width) / 2 : 0;
  const int pad_top = image.height < size ? (size - image.height) / 2 : 0;
  const int pw = image.width + (image.width < size ? size - image.width : 0);
  const int ph = image.height + (image.height < size ? size - image.height : 0);
  const int left =
      static_cast<int>(std::nearbyint((pw - size) / 2.0)) - pad_left;  // half to even, as round()
  const int top = static_cast<int>(std::nearbyint((ph - size) / 2.0)) - pad_top;
  for (int y = 0; y < size; ++y) {
    const int sy = y + top;
    if (sy < 0 || sy >= image.height) continue;
    for (int x = 0; x < size; ++x) {
      const int sx = x + left;
      if (sx < 0 || sx >= image.width) continue;
      for (int c = 0; c < image.channels; ++c) {
        out.pixels[(static_cast<size_t>(y) * size + x) * image.channels + c] = image.at(sy, sx, c);
      }
    }
  }
  return out;
}

void preprocess(const Image& decoded, const PreprocessParams& p, float* out) {
  if (static_cast<int>(p.mean.size()) != p.channels || static_cast<int>(p.std.size()) != p.channels) {
    throw Error("preprocess: mean/std must have one value per channel");
  }
  const Image cropped =
      center_crop(resize_shorter_side(convert_channels(decoded, p.channels), p.resize), p.crop);
  const size_t plane = static_cast<size_t>(p.crop) * p.crop;
  for (int c = 0; c < p.channels; ++c) {
    const float scale = 1.0f / (255.0f * p.std[c]);
    const float shift = p.mean[c] / p.std[c];
    for (size_t i = 0; i < plane; ++i)
      out[c * plane + i] = cropped.pixels[i * p.channels + c] * scale - shift;
  }
}

}  // namespace vimvq::data
