#!/usr/bin/env bash
# The test command: set up (idempotent), build, and run every test (C++ and Python) through CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
ctest --test-dir build --output-on-failure -j "$(nproc)" "$@"
