// The batches of a calibration's steps, block-wise and end-to-end alike.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>

namespace vimvq::calib {

// The steps' batches: a seeded permutation of the images, drawn afresh once the rest of it cannot
// fill a batch.
class BatchOrder {
 public:
  BatchOrder(int64_t images, int64_t batch_size, at::Generator& generator, at::Device device)
      : images_(images), batch_size_(batch_size), generator_(generator), device_(device) {
    shuffle();
  }
  at::Tensor next() {
    if (cursor_ + batch_size_ > images_) shuffle();
    const at::Tensor batch = order_.slice(0, cursor_, std::min(images_, cursor_ + batch_size_));
    cursor_ += batch_size_;
    return batch;
  }

 private:
  void shuffle() {
    order_ = at::randperm(images_, generator_).to(device_);
    cursor_ = 0;
  }
  int64_t images_, batch_size_, cursor_ = 0;
  at::Generator& generator_;
  at::Device device_;
  at::Tensor order_;
};

}  // namespace vimvq::calib
