#include <torch/version.h>

#include "src/cli/commands.h"
#include "vimvq/format/packed_checkpoint.h"
#include "vimvq/model/metadata.h"
#include "vimvq/util/strprintf.h"

namespace vimvq::cli {

std::string version_text() {
  return strprintf(
      "vimvq %s\n"
      "LibTorch %s (built against), CUDA scan kernels %s\n"
      "packed checkpoint format %d.%d (reads %d.x to %d.x), model contract %d",
      VIMVQ_VERSION, TORCH_VERSION, VIMVQ_CUDA_KERNELS ? "compiled in" : "not compiled",
      static_cast<int>(format::kMajorVersion), static_cast<int>(format::kMinorVersion),
      static_cast<int>(format::kOldestMajorVersion), static_cast<int>(format::kMajorVersion),
      model::kContractVersion);
}

}  // namespace vimvq::cli
