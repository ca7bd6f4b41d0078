#!/usr/bin/env bash
# The sanitizer run (CI runs it after the test command): the project's C++ code built with
# AddressSanitizer and UndefinedBehaviorSanitizer in build-asan (no CUDA kernels), then the whole
# C++ test suite and the fuzz targets (side by side, VIMVQ_FUZZ_SECONDS each, default 60) under
# them. LibTorch is not instrumented. The Python and CLI tests do not run here (they would need the
# sanitizer runtime preloaded into Python).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/free_space.sh
require_build_space build-asan "the sanitizer build (build-asan/)"  # it ends at 1.4 GB
torch_prefix=$(.venv/bin/python -c "import os, torch; print(torch.utils.cmake_prefix_path + ';' + os.path.dirname(torch.__file__))")
mkdir -p build-asan
# -O1, the sanitizers' usual level, except the kernels' own -O3 (per-file options come last): the
# build took 5 min 53 s instead of 7 min 49 s at -O3 here, and the suite 46 s instead of 62 s.
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O1 -DNDEBUG" \
  -DCMAKE_PREFIX_PATH="$torch_prefix" -DVIMVQ_SANITIZE=ON -DVIMVQ_CUDA=OFF -DVIMVQ_NATIVE=ON > build-asan/configure.log
cmake --build build-asan -j "$(nproc)" --target vimvq_tests vimvq_fuzz

# LibTorch keeps its globals to the end (leak reports would be its own), and its wheel carries
# copies of libstdc++ symbols that ASan's ODR check would call violations.
export ASAN_OPTIONS=detect_leaks=0:detect_odr_violation=0:alloc_dealloc_mismatch=0:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fixture=build-asan/fixtures/micro.vqpk  # written by the suite's PackedFormat.WriteCrossLanguageFixture
mkdir -p build-asan/fixtures
VIMVQ_PACKED_FIXTURE=$fixture build-asan/vimvq_tests --gtest_brief=1
# The three targets side by side: on 2 cores, 60 s each make about the runs of 40 s each one after
# another, in half the time. `wait PID` returns that target's status, so a failure stops the script.
seconds=${VIMVQ_FUZZ_SECONDS:-60}
pids=()
build-asan/vimvq_fuzz jpeg --seconds "$seconds" tests/data/fuzz/*.jpg & pids+=($!)
build-asan/vimvq_fuzz png --seconds "$seconds" tests/data/fuzz/*.png & pids+=($!)
build-asan/vimvq_fuzz packed --seconds "$seconds" "$fixture" & pids+=($!)
for pid in "${pids[@]}"; do wait "$pid"; done
echo "sanitize.sh: C++ tests and fuzz targets clean under ASan+UBSan"
