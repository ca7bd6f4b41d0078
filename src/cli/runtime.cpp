#include "src/cli/runtime.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>

#include <thread>

#include "vimvq/util/error.h"

namespace vimvq::cli {

int configure_threads(int requested) {
  const int n = requested > 0 ? requested : std::max(1u, std::thread::hardware_concurrency());
  at::set_num_threads(n);
  return n;
}

c10::Device parse_device(const std::string& name) {
  if (name != "cpu" && name.rfind("cuda", 0) != 0) {
    throw Error("--device '" + name + "': unknown device (use cpu, cuda or cuda:N)");
  }
  c10::Device device("cpu");
  try {
    device = c10::Device(name);
  } catch (const c10::Error&) {
    throw Error("--device '" + name + "': unknown device (use cpu, cuda or cuda:N)");
  }
  if (device.is_cuda() && !at::hasCUDA()) {
    throw Error("--device " + name +
                ": this vimvq's LibTorch has no CUDA support or no CUDA device is visible");
  }
  return device;
}

}  // namespace vimvq::cli
