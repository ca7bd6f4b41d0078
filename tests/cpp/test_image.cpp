#include <gtest/gtest.h>

#include "test_util.h"
#include "vimvq/data/image.h"
#include "vimvq/util/error.h"

using namespace vimvq;

namespace {
data::Image load(const std::string& name) {
  return data::read_image(vimvq::test::data_dir() / "images" / name);
}
}  // namespace

TEST(Image, DecodesEveryFormatByContent) {
  struct Case {
    const char* name;
    int width, height, channels;
  };
  for (const Case& c : {Case{"rocket_baseline.jpg", 640, 427, 3},
                        Case{"chelsea_progressive.jpg", 451, 300, 3}, Case{"camera_gray.jpg", 256, 256, 1},
                        Case{"chelsea_cmyk.jpg", 226, 150, 3}, Case{"coffee_rgb.png", 300, 200, 3},
                        Case{"astronaut_rgba.png", 200, 200, 3}, Case{"coffee_palette.png", 240, 160, 3},
                        Case{"camera_gray16.png", 160, 160, 1}, Case{"camera_gray.png", 180, 120, 1}}) {
    SCOPED_TRACE(c.name);
    const auto img = load(c.name);
    EXPECT_EQ(img.width, c.width);
    EXPECT_EQ(img.height, c.height);
    EXPECT_EQ(img.channels, c.channels);
    ASSERT_EQ(img.pixels.size(), static_cast<size_t>(c.width) * c.height * c.channels);
  }
}

TEST(Image, SixteenBitTakesTheHighByte) {
  // The fixture stores v * 257, so the high byte is exactly v: the 8-bit PNG of the same data matches.
  const auto img = load("camera_gray16.png");
  int64_t nonzero = 0;
  for (auto v : img.pixels) nonzero += v != 0;
  EXPECT_GT(nonzero, static_cast<int64_t>(img.pixels.size()) / 2);
}

TEST(Image, ExtensionDoesNotDecide) {
  vimvq::test::TempDir t;
  std::filesystem::copy_file(vimvq::test::data_dir() / "images" / "coffee_rgb.png",
                             t.path() / "really_a_png.jpg");
  const auto img = data::read_image(t.path() / "really_a_png.jpg");
  EXPECT_EQ(img.width, 300);
}

TEST(Image, BadFilesGiveErrorsNamingThem) {
  for (const char* name : {"not_an_image.jpg", "truncated.png"}) {
    try {
      load(name);
      FAIL() << name << " decoded";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
  }
  std::vector<uint8_t> truncated_jpeg = {0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10};
  EXPECT_THROW(data::decode_image(truncated_jpeg, "x.jpg"), Error);
  EXPECT_THROW(data::decode_image({}, "empty.png"), Error);
}

TEST(Image, GrayRgbConversionFollowsPil) {
  data::Image rgb{1, 1, 3, {200, 100, 50}};
  const auto gray = data::convert_channels(rgb, 1);
  EXPECT_EQ(gray.pixels[0], (200 * 19595 + 100 * 38470 + 50 * 7471 + 0x8000) >> 16);
  const auto back = data::convert_channels(gray, 3);
  EXPECT_EQ(back.pixels, (std::vector<uint8_t>(3, gray.pixels[0])));
}
