#include "vimvq/data/loader.h"

#include <algorithm>

#include "vimvq/util/error.h"

namespace vimvq::data {

BatchLoader::BatchLoader(const Dataset& dataset, PreprocessParams params, LoaderOptions options)
    : dataset_(dataset), params_(std::move(params)), options_(options) {
  if (options_.batch_size < 1) throw Error("batch size must be at least 1");
  const int64_t n = static_cast<int64_t>(dataset_.samples.size());
  num_batches_ = (n + options_.batch_size - 1) / options_.batch_size;
  const int threads = std::max(1, options_.threads);
  options_.prefetch_batches = std::max(options_.prefetch_batches, threads);
  for (int i = 0; i < threads; ++i) workers_.emplace_back([this] { work(); });
}

BatchLoader::~BatchLoader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  space_.notify_all();
  for (auto& w : workers_) w.join();
}

void BatchLoader::work() {
  for (;;) {
    int64_t index;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      space_.wait(lock, [&] {
        return stopping_ || next_to_claim_ >= num_batches_ ||
               next_to_claim_ < next_to_return_ + options_.prefetch_batches;
      });
      if (stopping_ || next_to_claim_ >= num_batches_) return;
      index = next_to_claim_++;
    }
    std::optional<Batch> batch;
    std::string error;
    try {
      batch = load_batch(index);
    } catch (const std::exception& e) {
      error = e.what();
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (batch) {
        done_.emplace(index, std::move(*batch));
      } else {
        errors_.emplace(index, error);
      }
    }
    ready_.notify_all();
  }
}

Batch BatchLoader::load_batch(int64_t index) const {
  const size_t first = static_cast<size_t>(index) * options_.batch_size;
  const size_t last = std::min(dataset_.samples.size(), first + options_.batch_size);
  const size_t image_floats = static_cast<size_t>(params_.channels) * params_.crop * params_.crop;
  Batch b;
  b.index = index;
  b.pixels.resize((last - first) * image_floats);
  for (size_t i = first; i < last; ++i) {
    const Sample& s = dataset_.samples[i];
    try {
      const Image img = read_image(s.path);
      preprocess(img, params_, b.pixels.data() + b.size() * image_floats);
    } catch (const Error& e) {
      if (options_.on_bad_image == BadImagePolicy::kFail) throw;
      b.skipped.push_back({s.path.string(), e.what()});
      continue;
    }
    b.labels.push_back(s.label);
    b.sample_indices.push_back(i);
  }
  b.pixels.resize(b.size() * image_floats);
  return b;
}

std::optional<Batch> BatchLoader::next() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (next_to_return_ >= num_batches_) return std::nullopt;
  const int64_t want = next_to_return_;
  ready_.wait(lock, [&] { return done_.count(want) != 0 || errors_.count(want) != 0; });
  if (auto e = errors_.find(want); e != errors_.end()) {
    const std::string message = e->second;
    errors_.erase(e);
    throw Error(message);
  }
  Batch b = std::move(done_.at(want));
  done_.erase(want);
  ++next_to_return_;
  lock.unlock();
  space_.notify_all();
  return b;
}

}  // namespace vimvq::data
