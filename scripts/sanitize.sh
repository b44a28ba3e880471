#!/usr/bin/env bash
# The sanitizer and fuzzing pass (docs/Reliability.md): builds quant-mlir with
# clang 22 under AddressSanitizer + UndefinedBehaviorSanitizer, with the
# libFuzzer targets of test/fuzz, into build-asan/; runs the unit tests and the
# lit suite under the sanitizers (any report fails the test); then runs each
# fuzz target for a bounded time from its seed corpus.
#
#   scripts/sanitize.sh [--fuzz-seconds N] [--no-tests] [--no-fuzz]
#                       [--fuzz-targets "a b ..."]
#
# N defaults to 60 (FUZZ_SECONDS). Inputs that crash a fuzz target are kept in
# build-asan/fuzz-artifacts/; the corpus each run grows is kept in
# build-asan/fuzz-corpus/<target> (the seeds in test/fuzz/corpus are never
# modified). Ends with "N passed, M failed" like scripts/test.sh.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build-asan"

fuzz_seconds=${FUZZ_SECONDS:-60}
run_tests=1
run_fuzz=1
fuzz_targets=""
while (($#)); do
  case $1 in
    --fuzz-seconds)
      [[ ${2:-} =~ ^[0-9]+$ ]] || { echo "sanitize.sh: --fuzz-seconds takes a whole number of seconds" >&2; exit 2; }
      fuzz_seconds=$2; shift 2 ;;
    --no-tests) run_tests=0; shift ;;
    --no-fuzz) run_fuzz=0; shift ;;
    --fuzz-targets) fuzz_targets=${2:-}; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "sanitize.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

# Fuzz targets (and, in run-suite.sh, unit-test binaries) run this many at a
# time.
parallel=${QNT_TEST_JOBS:-$(nproc)}
if ! [[ $parallel =~ ^[1-9][0-9]*$ ]]; then
  echo "sanitize.sh: QNT_TEST_JOBS must be a positive whole number, got '$parallel'" >&2
  exit 2
fi

"$root/scripts/setup.sh" || exit 1

start=$SECONDS
if [[ ! -f $build/build.ninja ]]; then
  CC=/usr/lib/llvm-22/bin/clang CXX=/usr/lib/llvm-22/bin/clang++ \
    cmake -S "$root" -B "$build" -G Ninja \
      -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_CXX_FLAGS="-gline-tables-only" \
      -DCMAKE_C_FLAGS="-gline-tables-only" \
      -DQNT_SANITIZERS="address;undefined" \
      -DQNT_BUILD_FUZZERS=ON || exit 1
fi
ninja -C "$build" || exit 1
echo "sanitize: build took $((SECONDS - start)) s"

# allow_user_poisoning=0: LLVM/MLIR come uninstrumented from the packages, and
# their container annotations mixed with instrumented code give false
# use-after-poison reports. abort_on_error=1: a report kills the process with
# SIGABRT, which lit's `not` does not mistake for an expected failure.
export ASAN_OPTIONS="allow_user_poisoning=0:abort_on_error=1:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:abort_on_error=1"
export LSAN_OPTIONS="suppressions=$root/test/fuzz/lsan.supp:print_suppressions=0"
export ASAN_SYMBOLIZER_PATH=/usr/lib/llvm-22/bin/llvm-symbolizer

passed=0
failed=0
if ((run_tests)); then
  start=$SECONDS
  out=$("$root/scripts/run-suite.sh" "$build" 2>&1)
  status=$?
  echo "$out" | grep -vE "^unit/.*: [0-9]+ passed, 0 failed$"
  summary=$(tail -1 <<<"$out")
  p=$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p' <<<"$summary")
  f=$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p' <<<"$summary")
  p=${p:-0}; f=${f:-0}
  ((status != 0 && f == 0)) && f=1
  passed=$((passed + p)); failed=$((failed + f))
  echo "sanitize: tests under ASan+UBSan took $((SECONDS - start)) s"
fi

if ((run_fuzz)); then
  start=$SECONDS
  [[ -n $fuzz_targets ]] ||
    fuzz_targets=$(cd "$build/fuzz" 2>/dev/null && ls qnt-fuzz-* 2>/dev/null | sed 's/^qnt-fuzz-//')
  # Each target once: two runs of one target would share its log and corpus.
  fuzz_targets=$(printf '%s\n' $fuzz_targets | awk 'NF && !seen[$0]++')
  mkdir -p "$build/fuzz-artifacts"
  # A status left by an earlier run must not pass for this one's.
  rm -f "$build"/fuzz-artifacts/*.status
  # One target per core at a time (QNT_TEST_JOBS): each is one process.
  fuzz_one() {
    local target=$1
    local bin="$build/fuzz/qnt-fuzz-$target"
    local seeds="$root/test/fuzz/corpus/$target"
    local corpus="$build/fuzz-corpus/$target"
    mkdir -p "$corpus"
    # -fork would hide which input crashed; one process, bounded time, memory
    # and per-input time; the seeds are read but only $corpus is written.
    "$bin" "$corpus" "$seeds" -max_total_time="$fuzz_seconds" -timeout=20 \
      -rss_limit_mb=3072 -malloc_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$build/fuzz-artifacts/$target-" \
      >"$build/fuzz-artifacts/$target.log" 2>&1
    echo $? >"$build/fuzz-artifacts/$target.status"
  }
  for target in $fuzz_targets; do
    while (($(jobs -rp | wc -l) >= parallel)); do wait -n; done
    fuzz_one "$target" &
  done
  wait
  for target in $fuzz_targets; do
    log="$build/fuzz-artifacts/$target.log"
    status=$(cat "$build/fuzz-artifacts/$target.status" 2>/dev/null || echo 1)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    cov=$(grep -oE "cov: [0-9]+" "$log" | tail -1)
    if ((status == 0)); then
      echo "fuzz/$target: ${execs:-?} inputs in ${fuzz_seconds} s, ${cov:-cov: ?}, no crash"
      passed=$((passed + 1))
    else
      echo "fuzz/$target: FAILED (exit $status); log $log"
      grep -E "ERROR|SUMMARY|runtime error|Test unit written|==[0-9]+==" "$log" | head -20
      failed=$((failed + 1))
    fi
  done
  echo "sanitize: fuzzing took $((SECONDS - start)) s"
fi

echo
echo "$passed passed, $failed failed"
((failed == 0))
