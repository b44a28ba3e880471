#!/usr/bin/env bash
# Runs the built test suite of one build directory: every GoogleTest binary
# in <build>/unittests (counting test cases), the lit suite, and the GPU
# kernels under compute-sanitizer where a GPU exists. Ends with the summary
# line "N passed, M failed" and exits non-zero on any failure.
#
#   scripts/run-suite.sh [build-dir]      (default: build)
#
# scripts/test.sh runs it on the release build, scripts/sanitize.sh on the
# ASan+UBSan build (with ASAN_OPTIONS/UBSAN_OPTIONS set, which lit passes on).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "${1:-$root/build}" || exit 1

passed=0
failed=0
failures=()

# GoogleTest binaries, as many at a time as there are cores (QNT_TEST_JOBS;
# each binary is one process, and the long ones would otherwise leave a core
# idle), each into its own log; then counted in name order.
parallel=${QNT_TEST_JOBS:-$(nproc)}
if ! [[ $parallel =~ ^[1-9][0-9]*$ ]]; then
  echo "run-suite.sh: QNT_TEST_JOBS must be a positive whole number, got '$parallel'" >&2
  exit 2
fi
logs=$(mktemp -d) || exit 1
trap 'rm -rf "$logs"' EXIT
for bin in unittests/*; do
  [[ -x $bin ]] && printf '%s\0' "$bin"
done | xargs -0 -r -P "$parallel" -I{} sh -c \
  'n=$(basename "$1"); "$1" --gtest_brief=1 > "$2/$n.log" 2>&1; echo $? > "$2/$n.status"' \
  _ {} "$logs"

# Count individual test cases.
for bin in unittests/*; do
  [[ -x $bin ]] || continue
  name=$(basename "$bin")
  out=$(cat "$logs/$name.log" 2>/dev/null)
  status=$(cat "$logs/$name.status" 2>/dev/null || echo 1)
  p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' <<<"$out")
  f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' <<<"$out")
  p=${p:-0}; f=${f:-0}
  if ((status != 0 && f == 0)); then f=1; fi
  echo "unit/$name: $p passed, $f failed"
  ((f)) && { echo "$out" | tail -40; failures+=("unit/$name"); }
  passed=$((passed + p)); failed=$((failed + f))
done

# lit suite.
lit_out=$(/usr/lib/llvm-22/bin/lit -sv --time-tests test/lit 2>&1)
lit_status=$?
# The five slowest tests, so that a CI log shows where its time goes.
echo "$lit_out" | grep -A6 "^Slowest Tests:" | grep -E "^ *[0-9.]+s: " || true
echo "$lit_out" | grep -E "^(FAIL|XPASS|UNRESOLVED):|Passed|Failed|Unsupported" || true
lp=$(sed -n 's/^ *Passed *: *\([0-9]*\).*/\1/p' <<<"$lit_out")
lf=$(grep -cE "^(FAIL|XPASS|UNRESOLVED):" <<<"$lit_out")
lp=${lp:-0}
if ((lit_status != 0 && lf == 0)); then lf=1; fi
((lf)) && { echo "$lit_out" | grep -A30 -E "^FAIL:" | head -120; failures+=("lit"); }
passed=$((passed + lp)); failed=$((failed + lf))

# GPU kernels under compute-sanitizer memcheck, where a GPU and the tool
# exist (the GPU tests above skip themselves without a driver).
sanitizer=""
for candidate in compute-sanitizer /usr/local/cuda/bin/compute-sanitizer; do
  command -v "$candidate" >/dev/null 2>&1 && { sanitizer=$candidate; break; }
done
if [[ -n $sanitizer ]] && [[ -e /dev/nvidiactl ]]; then
  if "$sanitizer" --tool memcheck --error-exitcode 1 --print-limit 20 \
       unittests/GpuMatmulTest --gtest_brief=1 >/tmp/qnt-memcheck.log 2>&1; then
    echo "compute-sanitizer memcheck (GpuMatmulTest): no errors"
    passed=$((passed + 1))
  else
    tail -40 /tmp/qnt-memcheck.log
    failures+=("memcheck"); failed=$((failed + 1))
  fi
else
  echo "compute-sanitizer memcheck: skipped (no GPU or no compute-sanitizer)"
fi

echo
if ((${#failures[@]})); then echo "failing suites: ${failures[*]}"; fi
echo "$passed passed, $failed failed"
((failed == 0))
