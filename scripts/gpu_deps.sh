#!/usr/bin/env bash
# Downloads (does not install) the Debian packages the vimvq tool builds with, into .gpu-deps/, for
# the GPU machine, which has PyTorch, CUDA, nvcc and CMake but no package registry. Carry the
# folder along (device run: carry [".gpu-deps", "data/fashion-mnist"]); scripts/gpu_check.sh
# unpacks it there. LibTorch itself is the GPU machine's own.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .gpu-deps
cd .gpu-deps
apt-get download libcli11-dev nlohmann-json3-dev libspdlog-dev libspdlog1.10 libfmt-dev libfmt9 \
  libjpeg62-turbo-dev libjpeg62-turbo libpng-dev libpng16-16 zlib1g-dev
ls -l
