#include "vimvq/util/atomic_file.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "vimvq/util/error.h"

namespace vimvq {

void write_file_atomically(const std::filesystem::path& path, const std::string& content) {
  namespace fs = std::filesystem;
  const fs::path tmp = path.string() + ".tmp" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out)
      throw Error(path.string() + ": cannot write (" + fs::path(path).parent_path().string() +
                  " not writable?)");
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    out.flush();
    if (!out) {
      std::error_code ec;
      fs::remove(tmp, ec);
      throw Error(path.string() + ": write failed (disk full?)");
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw Error(path.string() + ": cannot rename into place: " + ec.message());
  }
}

}  // namespace vimvq
