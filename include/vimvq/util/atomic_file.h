#pragma once

#include <filesystem>
#include <string>

namespace vimvq {

// An OutputSet of one file: written to a temporary file beside `path`, then renamed into place
// (or written through, when `path` is a special file). Throws vimvq::Error. It takes no lock:
// the caller's run declares `path` in its own OutputSet, which holds it. `message_after`: what an
// interruption says once the file is in place (OutputSet::commit).
void write_file_atomically(const std::filesystem::path& path, const std::string& content,
                           const std::string& message_after = "");

}  // namespace vimvq
