// The calibration set of `vimvq quantize`: a seeded subset of a folder, preprocessed by the
// model's metadata into one tensor, with a hash of its file list for the provenance.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "vimvq/data/dataset.h"
#include "vimvq/model/metadata.h"

namespace vimvq::cli {

struct CalibrationImages {
  at::Tensor images;                // (N, C, H, W) on the CPU
  std::string list_hash;            // FNV-1a 64 of the sorted relative paths, hex
  std::vector<data::Sample> used;   // the images above, sorted by path
  at::Tensor extra_images;          // the end-to-end stage's further images; undefined for none
  std::vector<data::Sample> spare;  // the folder's other images, in the seeded shuffle's order
};

// `extra` (>= 0, as the parameter's range keeps it): the end-to-end stage's further images, the
// seeded shuffle's next ones after the calibration images. Throws vimvq::Error for a missing or
// empty folder, a bad image, count < 1, or a folder with fewer than count + extra images when
// extra > 0.
CalibrationImages load_calibration_images(const std::string& folder, int count, uint64_t seed,
                                          const model::ModelMetadata& meta, int threads, int64_t extra = 0);

}  // namespace vimvq::cli
