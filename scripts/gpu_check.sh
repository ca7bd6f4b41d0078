#!/usr/bin/env bash
# One prepared device check (a GPU machine with PyTorch + CUDA + nvcc + CMake, no package registry):
# builds only the operator library against that machine's LibTorch, then runs the scan tests
# (CPU and CUDA) and the scan benchmark on the GPU. Output also lands in $OUT when set.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${VIMVQ_PYTHON:-python3}
prefix=$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)')
out=${OUT:-build-gpu}
mkdir -p "$out"
{
  nvidia-smi --query-gpu=name,memory.total --format=csv
  cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DVIMVQ_OPS_ONLY=ON -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_CUDA_ARCHITECTURES=90
  cmake --build build-gpu -j "$(nproc)"
  export VIMVQ_OPS_LIBRARY=$PWD/build-gpu/libvimvq_ops.so
  "$PY" -m unittest discover -s tests/python -p 'test_*scan.py' -v
  "$PY" scripts/bench_scan.py --device cuda --eval-images 0
} 2>&1 | tee "$out/gpu_check.log"
