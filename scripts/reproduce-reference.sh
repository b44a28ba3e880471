#!/usr/bin/env bash
# Quantizes stories260K with every recipe in recipes/ (or those named as
# arguments), scores each on tinystories_sample5.txt under the perplexity
# protocol, and prints them beside the official figures of
# ../shared/docs/REFERENCE_RESULTS.md. Usage (from the repository root):
#   bash scripts/reproduce-reference.sh [recipe-name ...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${QNT_SHARED:-$root/../shared}
model=$shared/models/stories260K/stories260K.bin
[[ -f $model ]] || { echo "reproduce-reference: $model not found" >&2; exit 1; }
bin=$root/build/bin
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Official s5 perplexities (REFERENCE_RESULTS.md), by recipe name.
declare -A reference=(
  [rtn-w8-pc-asym]=3.5518 [rtn-w4-pc-asym]=4.3183 [rtn-w4-g32-asym]=4.0180
  [rtn-w4-g32-sym]=4.0765 [rtn-w3-g32-asym]=6.8248 [rtn-w2-g32-asym]=346.4
  [gptq-w4-pc-asym]=3.8631 [gptq-w4-pc-asym-act]=3.8354
  [gptq-w4-g32-asym]=3.7771 [gptq-w4-g32-asym-act]=3.7328
  [gptq-w4-g32-asym-static]=3.8094 [gptq-w4-g32-sym-act]=3.7832
  [gptq-w4-g64-asym-act]=3.7618 [gptq-w3-g32-asym-act]=5.0153
  [gptq-w3-g32-asym-act-mse]=5.0153 [gptq-w3-pc-asym-act]=6.6338 [gptq-w2-g32-asym-act]=97.9
  # AWQ's official figures have down_proj per channel (it cannot do ragged
  # groups): -pcdown is that setting, the others are ragged.
  [awq-w4-g32-asym-pcdown]=3.8210 [awq-w4-g32-asym]=3.8210 [awq-w3-g32-asym]=5.8552
)
names=("$@")
if ((${#names[@]} == 0)); then
  for f in "$root"/recipes/*.yaml; do names+=("$(basename "$f" .yaml)"); done
fi
printf '%-26s %9s %9s %8s %8s\n' recipe s5-ppl official delta bits/w
for name in "${names[@]}"; do
  out=$work/$name
  "$bin/quant-compile" "$model" --recipe "$root/recipes/$name.yaml" -o "$out" \
    >"$work/$name.log" 2>&1 || { echo "$name: quant-compile failed:"; tail -5 "$work/$name.log"; exit 1; }
  ppl=$("$bin/quant-run" --model "$out" --perplexity "$shared/data/tinystories_sample5.txt" 2>/dev/null \
          --tokenizer "$shared/models/stories260K/tok512.bin" | sed -n 's/^perplexity: //p')
  bits=$(sed -n 's/^ *\([0-9.]*\) bits\/weight over.*/\1/p' "$work/$name.log" | tail -1)
  ref=${reference[$name]:-}
  delta=""
  [[ -n $ref ]] && delta=$(python3 -c "print('%+.2f%%' % (100 * ($ppl / $ref - 1)))")
  printf '%-26s %9s %9s %8s %8s\n' "$name" "$ppl" "${ref:--}" "$delta" "${bits:--}"
done
