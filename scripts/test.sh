#!/usr/bin/env bash
# README command 2: set up, build, and run every test (GoogleTest unit and
# end-to-end tests, lit/FileCheck IR and tool tests) on the release build.
# Ends with a summary line "N passed, M failed" and exits non-zero on any
# failure. The sanitizer and fuzzing pass is scripts/sanitize.sh; .ci/run
# runs both.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh" || exit 1
"$root/scripts/build.sh" || exit 1
exec "$root/scripts/run-suite.sh" "$root/build"
