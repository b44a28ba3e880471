#!/usr/bin/env bash
# Peak-memory benchmark of importing and RTN-quantizing a LLaMA-7B-shaped
# checkpoint (issue 3's target: under 3 GB). Writes a synthetic bf16
# checkpoint in 3 shards (13.5 GB, kept for reuse), runs quant-compile with
# qnt-rtn int4 g128 on it, and prints a JSON summary with the peak resident
# set size (getrusage ru_maxrss, which counts mapped checkpoint pages too).
#
#   bench/import-rtn-memory.sh [preset] [work-dir]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
preset=${1:-llama-7b}
work=${2:-${TMPDIR:-/tmp}/qnt-bench-$preset}
bin=$root/build/bin
mkdir -p "$work"
if [[ ! -f $work/model/config.json ]]; then
  "$bin/quant-synth" --preset "$preset" --format hf --dtype bf16 --shards 3 \
    --seed 7 -o "$work/model"
fi
rm -f "$work/model-q4.safetensors"
"$bin/quant-compile" "$work/model" \
  --pass-pipeline="builtin.module(qnt-rtn{bits=4 granularity=per-group group-size=128 output=$work/model-q4.safetensors})" \
  --summary-json "$work/summary.json" -o "$work/model-q4.mlir"
python3 - "$work" <<'PY'
import json, os, sys
work = sys.argv[1]
summary = json.load(open(os.path.join(work, "summary.json")))
size = lambda p: os.path.getsize(os.path.join(work, p))
model_bytes = sum(os.path.getsize(os.path.join(work, "model", f))
                  for f in os.listdir(os.path.join(work, "model"))
                  if f.endswith(".safetensors"))
summary.update(checkpoint_bytes=model_bytes,
               quantized_bytes=size("model-q4.safetensors"),
               target_peak_rss_bytes=3 * 1024**3)
summary["peak_rss_within_target"] = summary["peak_rss_bytes"] < 3 * 1024**3
print(json.dumps(summary, indent=2))
print("peak RSS %.2f GiB for a %.1f GB checkpoint (target < 3 GiB): %s" % (
    summary["peak_rss_bytes"] / 1024**3, model_bytes / 1e9,
    "OK" if summary["peak_rss_within_target"] else "OVER"))
PY
