#include <gtest/gtest.h>

#include "test_util.h"
#include "vimvq/data/loader.h"
#include "vimvq/util/error.h"

using namespace vimvq;

namespace {

data::Dataset fixture_dataset(bool with_bad) {
  data::Dataset ds;
  const auto dir = vimvq::test::data_dir() / "images";
  for (const char* name :
       {"rocket_baseline.jpg", "camera_gray.png", "coffee_palette.png", "chelsea_progressive.jpg",
        "astronaut_rgba.png", "camera_gray.jpg", "coffee_rgb.png"}) {
    ds.samples.push_back({dir / name, static_cast<int64_t>(ds.samples.size() % 3)});
  }
  if (with_bad) ds.samples.insert(ds.samples.begin() + 3, {dir / "truncated.png", 1});
  return ds;
}

std::vector<data::Batch> drain(const data::Dataset& ds, int threads, int batch, data::BadImagePolicy policy) {
  data::PreprocessParams p;
  p.resize = 40;
  p.crop = 32;
  data::LoaderOptions o;
  o.batch_size = batch;
  o.threads = threads;
  o.prefetch_batches = 2;
  o.on_bad_image = policy;
  data::BatchLoader loader(ds, p, o);
  std::vector<data::Batch> out;
  while (auto b = loader.next()) out.push_back(std::move(*b));
  return out;
}

}  // namespace

TEST(Loader, SameBatchesWhateverTheThreadCount) {
  const auto ds = fixture_dataset(false);
  const auto one = drain(ds, 1, 3, data::BadImagePolicy::kFail);
  ASSERT_EQ(one.size(), 3u);
  EXPECT_EQ(one[2].size(), 1u);
  for (int threads : {2, 4, 7}) {
    const auto many = drain(ds, threads, 3, data::BadImagePolicy::kFail);
    ASSERT_EQ(many.size(), one.size());
    for (size_t i = 0; i < one.size(); ++i) {
      EXPECT_EQ(many[i].index, static_cast<int64_t>(i));
      EXPECT_EQ(many[i].sample_indices, one[i].sample_indices);
      EXPECT_EQ(many[i].labels, one[i].labels);
      EXPECT_EQ(many[i].pixels, one[i].pixels);
    }
  }
}

TEST(Loader, BadImageFailsOrIsSkippedAndCounted) {
  const auto ds = fixture_dataset(true);
  try {
    drain(ds, 2, 2, data::BadImagePolicy::kFail);
    FAIL() << "a corrupt image must fail the run";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("truncated.png"), std::string::npos);
  }
  const auto batches = drain(ds, 2, 2, data::BadImagePolicy::kSkip);
  size_t images = 0, skipped = 0;
  for (const auto& b : batches) {
    images += b.size();
    skipped += b.skipped.size();
    for (const auto& s : b.skipped) EXPECT_NE(s.path.find("truncated.png"), std::string::npos);
  }
  EXPECT_EQ(images, 7u);
  EXPECT_EQ(skipped, 1u);
}
