#!/usr/bin/env bash
# One prepared device check, for a GPU machine with PyTorch + CUDA + nvcc + CMake and no package
# registry. It builds only the operator library against that machine's LibTorch. If CMake cannot
# use that LibTorch, it builds the same sources with torch.utils.cpp_extension instead. Then it runs
# the scan tests (CPU and CUDA) and the scan benchmark on the GPU. The benchmark includes
# whole-model eval when the Fashion-MNIST test files are found (FMNIST_ROOT, or
# data/fashion-mnist-raw/ carried along). Last, compute-sanitizer's memcheck watches a small scan.
# Every step runs even if one before it failed; the exit status says whether all passed. The log
# also lands in $OUT when that is set.
#
#   scripts/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${VIMVQ_PYTHON:-python3}
FMNIST_ROOT=${FMNIST_ROOT:-data/fashion-mnist-raw}
out=${OUT:-build-gpu}
mkdir -p "$out" build-gpu
[[ -x /usr/local/cuda/bin/nvcc ]] && export PATH=$PATH:/usr/local/cuda/bin
export PYTHONUNBUFFERED=1
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}  # Hopper; for the cpp_extension fallback
failed=()

step() {  # step NAME COMMAND...: runs, times and records one step
  local name=$1
  shift
  echo "=== $name"
  local t0=$SECONDS
  if "$@"; then
    echo "=== $name: ok ($((SECONDS - t0)) s)"
  else
    echo "=== $name: FAILED ($((SECONDS - t0)) s)"
    failed+=("$name")
  fi
}

# The libstdc++ that PyTorch runs with. The device image's /opt/gcc links libstdc++ statically by
# default, and a second, uninitialised copy of the iostreams inside libvimvq_ops.so crashes the
# first time an error message is formatted; linking the process's own shared copy avoids that.
torch_libstdcxx() {
  "$PY" -c 'import torch; print(next((l.split()[-1] for l in open("/proc/self/maps") if "libstdc++.so" in l), ""))'
}

has_own_libstdcxx() { [[ $(nm -C --defined-only "$1" 2>/dev/null) == *"std::locale::classic()"* ]]; }

build_with_cmake() {  # fails also when the library lacks its CUDA kernels or carries its own libstdc++
  local prefix libstdcxx
  prefix=$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)') || return
  libstdcxx=$(torch_libstdcxx)
  echo "PyTorch's libstdc++: ${libstdcxx:-not found}"
  cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DVIMVQ_OPS_ONLY=ON -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_CUDA_ARCHITECTURES=90 ${libstdcxx:+-DCMAKE_CXX_STANDARD_LIBRARIES="$libstdcxx"} || return
  cmake --build build-gpu -j "$(nproc)" || return
  ! has_own_libstdcxx build-gpu/libvimvq_ops.so || { echo "libvimvq_ops.so carries its own libstdc++"; return 1; }
  [[ $(nm -DC build-gpu/libvimvq_ops.so) == *cuda::scan_forward* ]]
}

build_with_torch_extension() {
  LIBSTDCXX=$(torch_libstdcxx) "$PY" - <<'EOF'
import glob, os
from torch.utils import cpp_extension
root = os.getcwd()
sources = sorted(glob.glob("src/ops/*.cpp") + glob.glob("src/ops/*.cu"))
libstdcxx = [os.environ["LIBSTDCXX"]] if os.environ.get("LIBSTDCXX") else []
cpp_extension.load(name="vimvq_ops", sources=sources, extra_include_paths=[root, os.path.join(root, "include")],
                   extra_cflags=["-O3", "-ffast-math", "-march=native", "-fopenmp"],
                   extra_ldflags=["-fopenmp"] + libstdcxx,
                   extra_cuda_cflags=["-O3"], build_directory="build-gpu",
                   is_python_module=False, verbose=True)
EOF
  cp build-gpu/vimvq_ops.so build-gpu/libvimvq_ops.so
}

sanitize_small_scan() {
  timeout 60 compute-sanitizer --tool memcheck --error-exitcode 3 "$PY" - <<'EOF'
import sys
sys.path[:0] = ["scripts", "tests/python"]
import torch
from helpers import random_scan_inputs
for shape in [(2, 44, 9, 16, 2), (1, 6, 5, 3, 2)]:
    args = [a.cuda().requires_grad_() for a in random_scan_inputs(*shape, seed=1)]
    torch.ops.vimvq.selective_scan(*args).sum().backward()
torch.cuda.synchronize()
print("memcheck run finished")
EOF
}

{
  echo "=== machine"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  nvcc --version | tail -2
  cmake --version | head -1
  "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))'
  step "build (CMake)" build_with_cmake
  if [[ " ${failed[*]} " == *"build (CMake)"* ]]; then
    step "build (torch.utils.cpp_extension)" build_with_torch_extension
  fi
  export VIMVQ_OPS_LIBRARY=$PWD/build-gpu/libvimvq_ops.so
  step "scan tests" timeout 180 "$PY" -m unittest discover -s tests/python -p 'test_*scan.py' -v
  eval_images=0
  [[ -e $FMNIST_ROOT/t10k-images-idx3-ubyte.gz || -e $FMNIST_ROOT/t10k-images-idx3-ubyte ]] && eval_images=10000
  step "scan benchmark" timeout 150 "$PY" scripts/bench_scan.py --device cuda --eval-images "$eval_images" \
    --fmnist-root "$FMNIST_ROOT"
  step "compute-sanitizer memcheck" sanitize_small_scan
  echo "=== failed steps: ${failed[*]:-none}"
  [[ ${#failed[@]} -eq 0 ]]
} 2>&1 | tee "$out/gpu_check.log"
