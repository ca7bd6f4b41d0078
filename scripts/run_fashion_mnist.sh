#!/usr/bin/env bash
# The main job on the shipped Fashion-MNIST model: set up, prepare the image folders, quantize at
# 2 bits with the calibration folder, evaluate against the original on the 10,000-image test split,
# print the report. Outputs: build/vim_fmnist.w2.vqpk, build/vim_fmnist.w2.json (+ .md).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
scripts/py scripts/prepare_fashion_mnist.py --out data/fashion-mnist
./build/vimvq quantize tests/data/vim_fmnist.pt data/fashion-mnist/calib -o build/vim_fmnist.w2.vqpk \
  --config configs/vim_fmnist_w2.json --eval-data data/fashion-mnist/test --report build/vim_fmnist.w2.json "$@"
