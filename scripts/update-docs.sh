#!/usr/bin/env bash
# Regenerates docs/reference/ from the ODS definitions.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
ninja -C "$root/build" qnt-doc
mkdir -p "$root/docs/reference"
cp "$root/build/docs/QntDialect.md" "$root/build/docs/QntPasses.md" \
   "$root/docs/reference/"
