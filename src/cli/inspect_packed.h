// vimvq inspect on a packed checkpoint: what the file holds and what it takes, on disk and loaded.
#pragma once

#include "src/cli/commands.h"

namespace vimvq::cli {

int inspect_packed(const InspectOptions& options);

}  // namespace vimvq::cli
