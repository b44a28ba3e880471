#!/usr/bin/env bash
# Configures (once) and builds quant-mlir into build/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if [[ ! -f build/build.ninja ]]; then
  cmake -S . -B build -G Ninja
fi
ninja -C build
