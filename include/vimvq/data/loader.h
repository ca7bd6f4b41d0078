// Parallel decoding + preprocessing into batches, with a bounded prefetch window.
// Batches come out in data-set order and with identical contents whatever the thread count:
// workers claim whole batches, and the consumer takes batch k only after batch k-1.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "vimvq/data/dataset.h"
#include "vimvq/data/preprocess.h"

namespace vimvq::data {

enum class BadImagePolicy { kFail, kSkip };

struct LoaderOptions {
  int batch_size = 64;
  int threads = 2;           // decoding workers
  int prefetch_batches = 4;  // decoded batches held ahead of the consumer, at most
  BadImagePolicy on_bad_image = BadImagePolicy::kFail;
};

struct SkippedImage {
  std::string path;
  std::string reason;
};

struct Batch {
  int64_t index = 0;
  std::vector<float> pixels;           // size() x channels x crop x crop
  std::vector<int64_t> labels;         // -1 where unlabelled
  std::vector<size_t> sample_indices;  // into Dataset::samples
  std::vector<SkippedImage> skipped;
  size_t size() const { return sample_indices.size(); }
};

class BatchLoader {
 public:
  BatchLoader(const Dataset& dataset, PreprocessParams params, LoaderOptions options);
  ~BatchLoader();
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  // The next batch in order, or nullopt at the end. Rethrows a worker's vimvq::Error (bad image
  // under kFail) when the consumer reaches that batch. A batch may be empty if all were skipped.
  std::optional<Batch> next();
  int64_t num_batches() const { return num_batches_; }

 private:
  void work();
  Batch load_batch(int64_t index) const;

  const Dataset& dataset_;
  PreprocessParams params_;
  LoaderOptions options_;
  int64_t num_batches_ = 0;

  std::mutex mutex_;
  std::condition_variable ready_, space_;
  int64_t next_to_claim_ = 0;
  int64_t next_to_return_ = 0;
  bool stopping_ = false;
  std::map<int64_t, Batch> done_;
  std::map<int64_t, std::string> errors_;
  std::vector<std::thread> workers_;
};

}  // namespace vimvq::data
