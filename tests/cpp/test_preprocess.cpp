// Pins the preprocessing against torchvision's transforms on real photographs
// (fixtures: scripts/make_image_fixtures.py).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "test_util.h"
#include "vimvq/data/preprocess.h"

using namespace vimvq;

namespace {

struct Diff {
  double mean = 0, max = 0;
};

Diff compare(const std::string& name, int resize, int crop) {
  const auto dir = vimvq::test::data_dir() / "images";
  const auto img = data::read_image(dir / name);
  data::PreprocessParams p;
  p.channels = 3;
  p.resize = resize;
  p.crop = crop;
  std::vector<float> ours(3 * crop * crop);
  data::preprocess(img, p, ours.data());
  const auto want = vimvq::test::read_floats(
      dir / (name + ".expected_" + std::to_string(resize) + "_" + std::to_string(crop) + ".f32"));
  EXPECT_EQ(want.size(), ours.size());
  Diff d;
  for (size_t i = 0; i < ours.size() && i < want.size(); ++i) {
    const double e = std::fabs(static_cast<double>(ours[i]) - want[i]);
    d.mean += e;
    d.max = std::max(d.max, e);
  }
  d.mean /= ours.size();
  std::printf("[ measured ] %s resize %d crop %d: mean |vimvq - torchvision| %.2e, max %.2e\n", name.c_str(),
              resize, crop, d.mean, d.max);
  return d;
}

}  // namespace

TEST(Preprocess, MatchesTorchvisionOnPhotographs) {
  for (const char* name :
       {"rocket_baseline.jpg", "chelsea_progressive.jpg", "camera_gray.jpg", "coffee_rgb.png",
        "astronaut_rgba.png", "coffee_palette.png", "camera_gray16.png", "camera_gray.png"}) {
    SCOPED_TRACE(name);
    const Diff d = compare(name, 96, 80);
    EXPECT_LT(d.mean, 1e-3);  // the bound is 0.01; PIL's fixed-point resampling is reproduced
    EXPECT_LT(d.max, 0.02);   // at most one 8-bit level (1/255/std)
  }
}

TEST(Preprocess, MatchesTorchvisionAtImageNetSize) {
  const Diff d = compare("rocket_baseline.jpg", 256, 224);
  EXPECT_LT(d.mean, 1e-3);
}

TEST(Preprocess, CmykPhotograph) {
  // PIL converts Adobe CMYK slightly differently; the bound here is the 0.01.
  EXPECT_LT(compare("chelsea_cmyk.jpg", 96, 80).mean, 0.01);
}

TEST(Preprocess, ShorterSideAndCenterCropGeometry) {
  data::Image img{10, 4, 1, std::vector<uint8_t>(40)};
  for (int i = 0; i < 40; ++i) img.pixels[i] = static_cast<uint8_t>(i);
  const auto same = data::resize_shorter_side(img, 4);
  EXPECT_EQ(same.pixels, img.pixels);  // torchvision returns the image untouched
  const auto resized = data::resize_shorter_side(img, 2);
  EXPECT_EQ(resized.height, 2);
  EXPECT_EQ(resized.width, 5);
  // (10 - 3) / 2 = 3.5 rounds half to even: left offset 4, as Python's round().
  const auto cropped = data::center_crop(img, 3);
  EXPECT_EQ(cropped.at(0, 0, 0), img.at(0, 4, 0));
}

TEST(Preprocess, CropLargerThanImagePadsWithZeros) {
  data::Image img{2, 2, 1, {10, 20, 30, 40}};
  const auto out = data::center_crop(img, 4);
  EXPECT_EQ(out.pixels, (std::vector<uint8_t>{0, 0, 0, 0, 0, 10, 20, 0, 0, 30, 40, 0, 0, 0, 0, 0}));
}
