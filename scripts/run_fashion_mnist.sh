#!/usr/bin/env bash
# The main job on the shipped Fashion-MNIST model: set up, prepare the image folders, evaluate,
# print the result (the JSON report lands in build/fashion_mnist_eval.json).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
scripts/py scripts/prepare_fashion_mnist.py --out data/fashion-mnist
./build/vimvq eval tests/data/vim_fmnist.pt --data data/fashion-mnist/test --batch-size 100 \
  --report build/fashion_mnist_eval.json "$@"
