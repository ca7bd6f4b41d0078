#pragma once

#include <filesystem>
#include <string>

namespace vimvq {

// An OutputSet of one file: written to a temporary file beside `path`, then renamed into place
// (or written through, when `path` is a special file). Throws vimvq::Error.
void write_file_atomically(const std::filesystem::path& path, const std::string& content);

}  // namespace vimvq
