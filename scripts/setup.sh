#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine: installs every Debian package vimvq needs,
# then configures and builds the C++ side. Safe to run again: apt skips what is installed.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build pkg-config clang-format
  libtorch-dev libopenblas0-pthread
  libcli11-dev libspdlog-dev nlohmann-json3-dev libgtest-dev libgmock-dev
  libjpeg62-turbo-dev libpng-dev
  python3-torch python3-torchvision python3-numpy python3-pil python3-faiss
  dataset-fashion-mnist
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [[ "${VIMVQ_SKIP_BUILD:-0}" != 1 ]]; then
  # VIMVQ_WERROR=1 (CI sets it) turns compiler warnings into errors.
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DVIMVQ_WERROR="$([[ ${VIMVQ_WERROR:-0} == 1 ]] && echo ON || echo OFF)"
  cmake --build build -j "$(nproc)"
fi
