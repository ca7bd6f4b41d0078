// The evaluation transform, from the model metadata, with PIL/torchvision semantics:
// Resize(shorter side, bicubic, antialiased, 8-bit fixed point as PIL) -> CenterCrop -> [0,1] ->
// Normalize(mean, std), written as float CHW.
#pragma once

#include <vector>

#include "vimvq/data/image.h"

namespace vimvq::data {

struct PreprocessParams {
  int channels = 3;
  int resize = 256;  // shorter side after resizing
  int crop = 224;    // square center crop
  std::vector<float> mean{0.485f, 0.456f, 0.406f};
  std::vector<float> std{0.229f, 0.224f, 0.225f};
};

// PIL's Image.resize((width, height), BICUBIC) on 8-bit images (separable, horizontal pass first).
Image resize_bicubic(const Image& image, int width, int height);

// torchvision's Resize(size) on a PIL image: shorter side -> size, longer side truncated.
Image resize_shorter_side(const Image& image, int size);

// torchvision's CenterCrop(size): offsets round half to even, zero padding when the image is smaller.
Image center_crop(const Image& image, int size);

// Full transform into out[channels * crop * crop].
void preprocess(const Image& decoded, const PreprocessParams& params, float* out);

}  // namespace vimvq::data
