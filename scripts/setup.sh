#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine: installs the Debian packages vimvq needs, makes
# the project's virtual environment (.venv) with the pinned PyTorch from PyPI (scripts/requirements.txt)
# whose LibTorch the C++ side builds against, then configures and builds. Safe to run again: apt
# and pip skip what is installed. VIMVQ_VENV_SPACE_MB (default 8000) and VIMVQ_BUILD_SPACE_MB
# (default 1500): the free space it asks for before installing PyTorch into the venv and before a
# first build.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/free_space.sh

packages=(
  build-essential cmake ninja-build pkg-config clang-format
  libcli11-dev libspdlog-dev nlohmann-json3-dev libgtest-dev libgmock-dev
  libjpeg62-turbo-dev libpng-dev
  python3-venv python3-numpy python3-pil python3-faiss strace
  dataset-fashion-mnist
  slurm-wlm munge  # the one-node Slurm of the sweep's Slurm test (scripts/slurm_local.sh)
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

if ! compgen -G ".venv/lib/python3*/site-packages/torch/__init__.py" > /dev/null; then
  # The venv takes 4.6 GB; pip holds the 2.6 GB of downloaded wheels until it has installed them.
  require_free_mb . "${VIMVQ_VENV_SPACE_MB:-8000}" "the venv's PyTorch (pip install)"
fi
if [[ ! -x .venv/bin/python ]]; then
  # System site packages: numpy, Pillow and faiss come from Debian; torch only from the venv.
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r scripts/requirements.txt  # seconds when present
# The torch package folder itself too: TorchConfig's find_library calls then take torch/lib before
# the system folders (where an old Debian libtorch could sit).
torch_prefix=$(.venv/bin/python -c "import os, torch; print(torch.utils.cmake_prefix_path + ';' + os.path.dirname(torch.__file__))")
cuda_compiler=()
if [[ -x /usr/local/cuda/bin/nvcc ]]; then cuda_compiler=(-DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc); fi

if [[ "${VIMVQ_SKIP_BUILD:-0}" != 1 ]]; then
  require_build_space build "the build (build/)"
  # VIMVQ_WERROR=1 (CI sets it) turns compiler warnings into errors.
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$torch_prefix" "${cuda_compiler[@]}" \
    -DVIMVQ_WERROR="$([[ ${VIMVQ_WERROR:-0} == 1 ]] && echo ON || echo OFF)"
  cmake --build build -j "$(nproc)"
fi
