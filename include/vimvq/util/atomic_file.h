#pragma once

#include <filesystem>
#include <string>

namespace vimvq {

// Writes to a temporary file beside `path`, then renames it into place: readers never see a
// partial file, and a failure leaves any previous file untouched. Throws vimvq::Error.
void write_file_atomically(const std::filesystem::path& path, const std::string& content);

}  // namespace vimvq
