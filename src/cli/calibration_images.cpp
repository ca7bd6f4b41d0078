#include "src/cli/calibration_images.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <random>

#include "vimvq/data/loader.h"
#include "vimvq/util/error.h"
#include "vimvq/util/fnv1a.h"
#include "vimvq/util/strprintf.h"

namespace vimvq::cli {
namespace {

std::string list_hash(const std::vector<data::Sample>& used, const std::vector<data::Sample>& extra,
                      const std::string& folder) {
  uint64_t h = kFnv1aOffset;
  for (const auto& s : used) h = fnv1a(h, std::filesystem::relative(s.path, folder).string() + "\n");
  // Only when there are any, so that a run without them keeps its hash.
  if (!extra.empty()) h = fnv1a(h, std::string("+ the end-to-end stage's\n"));
  for (const auto& s : extra) h = fnv1a(h, std::filesystem::relative(s.path, folder).string() + "\n");
  return hex64(h);
}

at::Tensor load_pixels(const std::vector<data::Sample>& samples, const model::ModelMetadata& meta,
                       int threads) {
  data::Dataset ds;
  ds.samples = samples;
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
  return at::from_blob(pixels.data(), {n, c, s, s}, at::kFloat).clone();
}

void sort_by_path(std::vector<data::Sample>& samples) {
  std::sort(samples.begin(), samples.end(), [](auto& a, auto& b) { return a.path < b.path; });
}

}  // namespace

CalibrationImages load_calibration_images(const std::string& folder, int count, uint64_t seed,
                                          const model::ModelMetadata& meta, int threads, int64_t extra) {
  if (count < 1) throw Error("--calib-size must be at least 1");
  data::Dataset ds = data::open_dataset(folder, std::nullopt);
  const auto available = static_cast<int64_t>(ds.samples.size());
  if (extra > 0 && available < count + extra)
    throw Error(
        strprintf("%s: e2e_extra_images %lld needs that many images besides the %d calibration "
                  "images, and the folder has %lld in all",
                  folder.c_str(), static_cast<long long>(extra), count, static_cast<long long>(available)));
  CalibrationImages out;
  std::vector<data::Sample> stage;  // the extra images, by path
  if (count < available) {
    std::mt19937_64 rng(seed);
    std::shuffle(ds.samples.begin(), ds.samples.end(), rng);
    // The stage's extra images are the shuffle's next ones, so that the agreement check (the rest)
    // stays out of everything the run trained on.
    stage.assign(ds.samples.begin() + count, ds.samples.begin() + count + extra);
    out.spare.assign(ds.samples.begin() + count + extra, ds.samples.end());
    ds.samples.resize(count);
    sort_by_path(ds.samples);
    sort_by_path(stage);
  }
  out.used = ds.samples;
  out.list_hash = list_hash(out.used, stage, folder);
  out.images = load_pixels(out.used, meta, threads);
  if (!stage.empty()) out.extra_images = load_pixels(stage, meta, threads);
  return out;
}

}  // namespace vimvq::cli
