#include "vimvq/util/atomic_file.h"

#include "vimvq/util/output_set.h"

namespace vimvq {

void write_file_atomically(const std::filesystem::path& path, const std::string& content,
                           const std::string& message_after) {
  OutputSet out(/*lock_outputs=*/false);
  out.add_output(path, "output");
  out.stage(path, content);
  out.commit(message_after);
}

}  // namespace vimvq
