#!/usr/bin/env bash
# README command 1: set up, build, and run the built-in example: a 256x512
# linear layer quantized with RTN (int8 per-channel, int4 g128, E2M1 g32),
# fused, lowered to CPU code, run, and compared with host references.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
"$root/scripts/build.sh"
"$root/build/bin/quant-run" --demo
