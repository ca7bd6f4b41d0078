#include "src/cli/calibration_images.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <random>

#include "vimvq/data/loader.h"
#include "vimvq/util/error.h"
#include "vimvq/util/fnv1a.h"

namespace vimvq::cli {
namespace {

std::string list_hash(const data::Dataset& ds, const std::string& folder) {
  uint64_t h = kFnv1aOffset;
  for (const auto& s : ds.samples) h = fnv1a(h, std::filesystem::relative(s.path, folder).string() + "\n");
  return hex64(h);
}

}  // namespace

CalibrationImages load_calibration_images(const std::string& folder, int count, uint64_t seed,
                                          const model::ModelMetadata& meta, int threads) {
  if (count < 1) throw Error("--calib-size must be at least 1");
  data::Dataset ds = data::open_dataset(folder, std::nullopt);
  CalibrationImages out;
  if (static_cast<size_t>(count) < ds.samples.size()) {
    std::mt19937_64 rng(seed);
    std::shuffle(ds.samples.begin(), ds.samples.end(), rng);
    out.spare.assign(ds.samples.begin() + count, ds.samples.end());
    ds.samples.resize(count);
    std::sort(ds.samples.begin(), ds.samples.end(), [](auto& a, auto& b) { return a.path < b.path; });
  }
  out.used = ds.samples;
  out.list_hash = list_hash(ds, folder);
  data::LoaderOptions lo;
  lo.batch_size = 64;
  lo.threads = threads;
  data::BatchLoader loader(ds, meta.preprocess, lo);
  std::vector<float> pixels;
  int64_t n = 0;
  while (auto b = loader.next()) {
    pixels.insert(pixels.end(), b->pixels.begin(), b->pixels.end());
    n += static_cast<int64_t>(b->size());
  }
  const int64_t c = meta.preprocess.channels, s = meta.preprocess.crop;
  out.images = at::from_blob(pixels.data(), {n, c, s, s}, at::kFloat).clone();
  return out;
}

}  // namespace vimvq::cli
