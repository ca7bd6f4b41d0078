// Listing evaluation and calibration images: ImageFolder trees, flat folders with a label file,
// and unlabelled (possibly nested) folders. Listing never decodes; order is sorted and stable.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace vimvq::data {

struct Sample {
  std::filesystem::path path;
  int64_t label = -1;  // -1: unlabelled
};

struct Dataset {
  std::vector<Sample> samples;
  std::vector<std::string> classes;  // ImageFolder class names (sorted), empty otherwise
  bool labelled() const { return !samples.empty() && samples.front().label >= 0; }
};

// <dir>/<class>/**/<image>: sorted class names give indices 0..n-1 (torchvision's ImageFolder).
Dataset list_image_folder(const std::filesystem::path& dir);

// Every file under dir, recursively, sorted by relative path, unlabelled.
Dataset list_unlabelled(const std::filesystem::path& dir);

// A flat folder plus a label file. Two formats, detected per file:
//  - one integer per line (ILSVRC2012_validation_ground_truth.txt): line i labels the i-th file in
//    sorted name order; values are 1-based class indices unless label_base says otherwise;
//  - "<file name> <label>" lines, label an index (0-based) or one of class_names; a file named
//    twice is an error.
// num_classes > 0: a label outside the model's classes is an error naming the row and the label
// as the file writes it.
Dataset list_with_label_file(const std::filesystem::path& dir, const std::filesystem::path& label_file,
                             const std::vector<std::string>& class_names, std::optional<int> label_base = {},
                             int num_classes = 0);

// Chooses: label file given -> list_with_label_file; sub-folders only -> list_image_folder;
// otherwise unlabelled. Throws vimvq::Error for a missing, unreadable or empty folder.
Dataset open_dataset(const std::filesystem::path& dir, const std::optional<std::filesystem::path>& label_file,
                     const std::vector<std::string>& class_names = {});

}  // namespace vimvq::data
