#!/usr/bin/env bash
# Installs every build and test dependency of quant-mlir on Debian 12.
# Idempotent: packages already present are not downloaded again.
set -euo pipefail

packages=(
  llvm-22-dev llvm-22-tools libmlir-22-dev mlir-22-tools lld-22
  ninja-build cmake g++ ccache python3
  libeigen3-dev nlohmann-json3-dev libgtest-dev libgmock-dev libbenchmark-dev
  # The sanitizer and fuzzing build (scripts/sanitize.sh): clang with
  # compiler-rt (ASan, UBSan, libFuzzer); LLVM's OpenMP runtime, which the
  # JIT also loads for the multi-threaded CPU kernels.
  clang-22 libclang-rt-22-dev libomp-22-dev
  # The quality-versus-bits plot (bench/quality-report.py).
  gnuplot-nox
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$p")
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  # A fresh machine may have no package lists yet.
  if ! apt-cache policy llvm-22-dev 2>/dev/null | grep -q Candidate; then
    "${sudo_cmd[@]}" apt-get update -qq
  fi
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all dependencies present"
fi
