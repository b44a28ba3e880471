#!/usr/bin/env python3
"""Quality versus bits: quantizes a model with a grid of recipes, scores each
on a text with quant-run's perplexity protocol, and writes a table
(docs/results/<name>.md) and a plot of perplexity against bits per weight
(docs/results/<name>.svg, gnuplot) with the official reference points of
../shared/docs/REFERENCE_RESULTS.md drawn in.

  python3 bench/quality-report.py                 # stories260K, s5
  python3 bench/quality-report.py --recipes awq-w4-g32-asym rtn-w4-g32-asym

Outputs are kept in --work (default build/quality-report): a recipe whose
output directory holds the same recipe text is not compiled again, and its
perplexity is not measured again.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("QNT_SHARED", os.path.join(os.path.dirname(ROOT), "shared"))

# recipe: (method, format) as the table shows them.
DEFAULT_RECIPES = [
    ("rtn-w8-pc-asym", "RTN", "int8 per-channel"),
    ("rtn-w4-pc-asym", "RTN", "int4 per-channel"),
    ("rtn-w4-g32-asym", "RTN", "int4 g32"),
    ("rtn-w3-g32-asym", "RTN", "int3 g32"),
    ("gptq-w4-pc-asym-act", "GPTQ act-order", "int4 per-channel"),
    ("gptq-w4-g32-asym-act", "GPTQ act-order", "int4 g32"),
    ("gptq-w4-g64-asym-act", "GPTQ act-order", "int4 g64"),
    ("gptq-w3-g32-asym-act", "GPTQ act-order", "int3 g32"),
    ("gptq-w3-g32-asym-act-lorc2", "GPTQ act-order + LoRC r2 f16", "int3 g32"),
    ("gptq-w3-g32-asym-act-lorc8", "GPTQ act-order + LoRC r8 int8", "int3 g32"),
    ("awq-w4-g32-asym-pcdown", "AWQ (down_proj per channel)", "int4 g32"),
    ("awq-w4-g32-asym", "AWQ", "int4 g32"),
    ("awq-w3-g32-asym", "AWQ", "int3 g32"),
    ("smoothquant-plus-w4-g32-asym", "SmoothQuant+", "int4 g32"),
    ("gptq-w4-g32-sym-act", "GPTQ act-order", "int4 sym g32"),
    ("gptq-e2m1-g32-act", "GPTQ act-order", "e2m1 g32"),
    ("awq-e2m1-g32", "AWQ", "e2m1 g32"),
    ("gptq-w3-g32-sym-act", "GPTQ act-order", "int3 sym g32"),
    ("gptq-e1m1-g32-act", "GPTQ act-order", "e1m1 g32"),
    ("gptq-e2m0-g32-act", "GPTQ act-order", "e2m0 g32"),
    ("mixed-precision-4.0-gptq-act", "mixed precision + GPTQ act-order", "int2..8, budget 4.0"),
    ("mixed-precision-5.0-gptq-act", "mixed precision + GPTQ act-order", "int2..8, budget 5.0"),
    ("rtn-w4-pc-asym-cle", "equalization + RTN", "int4 per-channel"),
    ("rtn-w4-pc-asym-cle-bc", "equalization + RTN + bias correction", "int4 per-channel"),
    ("gptq-w4-g32-asym-act-f16-scales", "GPTQ act-order", "int4 g32, f16 scales"),
    ("mixed-precision-4.0-gptq-act-f16-scales", "mixed precision + GPTQ act-order", "int2..8, f16 scales, budget 4.0"),
    ("mixed-precision-5.0-gptq-act-f16-scales", "mixed precision + GPTQ act-order", "int2..8, f16 scales, budget 5.0"),
    ("smoothquant-w8a8", "SmoothQuant W8A8", "int8 per-channel, a8 per-token"),
    ("flexround-w4-pc-asym", "FlexRound", "int4 per-channel"),
    ("flexround-w3-g32-asym", "FlexRound", "int3 g32"),
    ("flexround-w2-g32-asym", "FlexRound", "int2 g32"),
    ("adaround-e2m1-g32", "AdaRound", "e2m1 g32"),
    ("flexround-e2m1-g32", "FlexRound", "e2m1 g32"),
    ("pdquant-w4a8-pc-asym", "PD-Quant", "int4 per-channel, a8 per-token"),
    ("pdquant-w4a8-pc-asym-nopd", "PD-Quant without PD term", "int4 per-channel, a8 per-token"),
    ("pdquant-w4a4-pc-asym", "PD-Quant", "int4 per-channel, a4 per-token"),
    ("pdquant-w4a4-pc-asym-nopd", "PD-Quant without PD term", "int4 per-channel, a4 per-token"),
    ("ptq161-r0.2", "PTQ1.61", "20% int4 + binarized rest"),
    ("ptq161-r0.2-ef-pd", "PTQ1.61 + error feedback + PD", "20% int4 + binarized rest"),
    ("aqlm-1x8-g4", "AQLM", "1x8 g4, codebook per layer"),
    ("aqlm-1x8-g4-shared", "AQLM", "1x8 g4, one shared codebook, f16 scales"),
    ("aqlm-1x8-g4-shared-ft", "AQLM", "1x8 g4, shared codebook, fine-tuned scales"),
    ("aqlm-1x8-g4-block-ft", "AQLM", "1x8 g4, codebook per block, fine-tuned"),
]

# Official figures (REFERENCE_RESULTS.md): recipe with the same settings ->
# s5 perplexity. They are drawn at the bits per weight of that recipe.
REFERENCE = {
    "rtn-w8-pc-asym": 3.5518, "rtn-w4-pc-asym": 4.3183,
    "rtn-w4-g32-asym": 4.0180, "rtn-w3-g32-asym": 6.8248,
    "gptq-w4-pc-asym-act": 3.8354, "gptq-w4-g32-asym-act": 3.7328,
    "gptq-w4-g64-asym-act": 3.7618, "gptq-w3-g32-asym-act": 5.0153,
    "awq-w4-g32-asym-pcdown": 3.8210, "awq-w3-g32-asym": 5.8552,
    "gptq-w4-g32-sym-act": 3.7832,
}
# llama.cpp's own quantizer on the same model: (type, bits/weight, s5).
LLAMA_CPP = [("Q8_0", 10.3, 3.5517), ("Q5_K_M", 8.5, 3.5993),
             ("Q4_K_M + imatrix", 8.1, 3.5612), ("Q4_0", 7.3, 3.8324),
             ("IQ4_NL + imatrix", 7.3, 3.7715), ("Q3_K_M", 7.4, 3.7590)]
FLOAT_PPL = 3.5482


def run(cmd, log):
    with open(log, "w") as out:
        return subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT).returncode


def bits_per_weight(report_path, log_path):
    """Weighted bits/weight of the last weight-method step's layers (from
    report.json, or for steps run as a plain pass, from quant-compile's
    summary line in the log)."""
    with open(report_path) as f:
        report = json.load(f)
    layers = [s["layers"] for s in report["steps"] if s.get("layers")]
    if layers:
        total = sum(l["bits_per_weight"] * l["rows"] * l["cols"] for l in layers[-1])
        return total / sum(l["rows"] * l["cols"] for l in layers[-1])
    summary = [l for l in open(log_path).read().splitlines()
               if "bits/weight over" in l] if os.path.exists(log_path) else []
    return float(summary[-1].split()[0]) if summary else None


def recipe_path(name):
    path = os.path.join(ROOT, "recipes", name + ".yaml")
    return path if os.path.exists(path) else None


def measure(name, args, index, count):
    out = os.path.join(args.work, name)
    recipe = recipe_path(name)
    if recipe is None:
        print(f"[{index}/{count}] {name}: no recipes/{name}.yaml, skipped", flush=True)
        return None
    text = open(recipe).read()
    cached = os.path.join(out, "recipe.yaml")
    ppl_file = os.path.join(out, "s5-perplexity.txt")
    fresh = not (os.path.exists(cached) and open(cached).read() == text)
    start = time.time()
    if fresh:
        print(f"[{index}/{count}] {name}: quantizing ...", flush=True)
        if os.path.exists(out):
            shutil.rmtree(out)
        log = os.path.join(args.work, name + ".log")
        if run([args.bin + "/quant-compile", args.model, "--recipe", recipe, "-o", out], log):
            print(f"  quant-compile failed; see {log}", flush=True)
            return None
    if fresh or not os.path.exists(ppl_file):
        result = subprocess.run(
            [args.bin + "/quant-run", "--model", out, "--tokenizer", args.tokenizer,
             "--perplexity", args.text], capture_output=True, text=True)
        lines = [l for l in result.stdout.splitlines() if l.startswith("perplexity: ")]
        if result.returncode or not lines:
            print(f"  quant-run failed: {result.stderr.strip()[-300:]}", flush=True)
            return None
        with open(ppl_file, "w") as f:
            f.write(lines[0].split(": ")[1] + "\n")
    ppl = float(open(ppl_file).read())
    bits = bits_per_weight(os.path.join(out, "report.json"),
                           os.path.join(args.work, name + ".log"))
    if bits is None:
        print(f"[{index}/{count}] {name}: no bits per weight in its report", flush=True)
        return None
    state = "done" if fresh else "cached"
    print(f"[{index}/{count}] {name}: {bits:.3f} bits/weight, s5 {ppl:.4f} "
          f"({state}, {time.time() - start:.0f} s)", flush=True)
    return bits, ppl


def family(row):
    """The plot's series of a row: the method family, minifloat grids apart."""
    method = row["method"]
    for name in ("LoRC", "mixed precision", "SmoothQuant+", "equalization",
                 "AWQ", "GPTQ", "RTN"):
        if name in method:
            base = name
            break
    else:
        base = method
    return base + (" (minifloat)" if row["format"].startswith("e") else "")


def write_plot(rows, args, svg):
    gnuplot = shutil.which("gnuplot")
    if not gnuplot:
        print("quality-report: gnuplot not found (scripts/setup.sh installs "
              "gnuplot-nox); no plot", file=sys.stderr)
        return False
    families = []
    for r in rows:
        if family(r) not in families:
            families.append(family(r))
    data = os.path.join(args.work, "points.dat")
    with open(data, "w") as f:
        for name in families:
            f.write(f"# {name}: bits ppl\n")
            for r in rows:
                if family(r) == name:
                    f.write(f"{r['bits']:.4f} {r['ppl']:.4f}\n")
            f.write("\n\n")
        f.write("# official: bits ppl\n")
        for r in rows:
            if r["reference"]:
                f.write(f"{r['bits']:.4f} {r['reference']:.4f}\n")
        f.write("\n\n# llama.cpp: bits ppl\n")
        for name, bits, ppl in LLAMA_CPP:
            f.write(f"{bits} {ppl} \"{name}\"\n")
    colors = ["#1f77b4", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
              "#17becf", "#bcbd22", "#7f7f7f", "#2ca02c", "#d62728"]
    series = [f"'{data}' index {i} using 1:2 with points pt 7 ps 1.3 "
              f"lc rgb '{colors[i % len(colors)]}' title '{name}'"
              for i, name in enumerate(families)]
    n = len(families)
    series.append(f"'' index {n} using 1:2 with points pt 6 ps 2.0 lw 1.5 "
                  "lc rgb '#d62728' title 'official implementation, same settings'")
    series.append(f"'' index {n + 1} using 1:2 with points pt 4 ps 1.3 "
                  "lc rgb '#2ca02c' title 'llama.cpp Q8_0 .. Q3_K_M (its own quantizer)'")
    script = f"""
{"set terminal png size 960,600 noenhanced" if svg.endswith(".png") else "set terminal svg size 960,600 dynamic font 'sans,11' noenhanced"}
set output '{svg}'
set title 'stories260K: s5 perplexity vs bits per weight of the decoder linears'
set xlabel 'bits per weight (codes, scales, zeros and LoRC factors)'
set ylabel 's5 perplexity (log scale)'
set logscale y
set yrange [3.4:8]
set ytics (3.5, 3.75, 4, 4.5, 5, 6, 7, 8)
set xrange [3.8:11]
set grid
set key inside right top box opaque font ',10'
set arrow from 3.8,{FLOAT_PPL} to 11,{FLOAT_PPL} nohead dashtype 2 lc rgb 'gray40'
set label 'fp32 {FLOAT_PPL}' at 10.9,{FLOAT_PPL * 0.98} right textcolor rgb 'gray40'
plot {", ".join(series)}
"""
    result = subprocess.run([gnuplot], input=script, text=True, capture_output=True)
    if result.returncode:
        print("quality-report: gnuplot failed: " + result.stderr, file=sys.stderr)
        return False
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=os.path.join(SHARED, "models/stories260K/stories260K.bin"))
    parser.add_argument("--tokenizer", default=os.path.join(SHARED, "models/stories260K/tok512.bin"))
    parser.add_argument("--text", default=os.path.join(SHARED, "data/tinystories_sample5.txt"))
    parser.add_argument("--bin", default=os.path.join(ROOT, "build/bin"))
    parser.add_argument("--work", default=os.path.join(ROOT, "build/quality-report"))
    parser.add_argument("--out", default=os.path.join(ROOT, "docs/results"))
    parser.add_argument("--name", default="stories260k")
    parser.add_argument("--recipes", nargs="*", help="recipe names (default: the built-in grid)")
    parser.add_argument("--plot-format", choices=["svg", "png"], default="svg")
    args = parser.parse_args()
    for path in (args.model, args.tokenizer, args.text):
        if not os.path.exists(path):
            sys.exit(f"quality-report: {path} not found")
    os.makedirs(args.work, exist_ok=True)
    os.makedirs(args.out, exist_ok=True)
    grid = DEFAULT_RECIPES
    if args.recipes:
        known = {r[0]: r for r in DEFAULT_RECIPES}
        grid = [known.get(n, (n, n, "")) for n in args.recipes]

    rows = []
    for index, (name, method, fmt) in enumerate(grid, 1):
        measured = measure(name, args, index, len(grid))
        if measured:
            bits, ppl = measured
            rows.append({"recipe": name, "method": method, "format": fmt, "bits": bits,
                         "ppl": ppl, "reference": REFERENCE.get(name),
                         "label": f"{method} {fmt}"})

    rows.sort(key=lambda r: (r["bits"], r["ppl"]))
    table = os.path.join(args.out, args.name + ".md")
    svg = os.path.join(args.out, args.name + "." + args.plot_format)
    plotted = write_plot(rows, args, svg)
    with open(table, "w") as f:
        f.write(f"# Quality versus bits: {args.name}\n\n")
        f.write("Written by `python3 bench/quality-report.py` (do not edit): each "
                "recipe of `recipes/` quantizes the model with the reference "
                "calibration protocol, and `quant-run --perplexity` scores it on "
                f"`{os.path.relpath(args.text, ROOT)}` "
                f"(fp32: {FLOAT_PPL}). Bits per weight are those of the decoder "
                "linears, every stored part counted (codes, f32 or f16 "
                "scales, 8-bit zeros, LoRC factors, bias corrections). "
                "\"official\" is the figure of the "
                "official implementation with the same settings "
                "(REFERENCE_RESULTS.md).\n\n")
        if plotted:
            f.write(f"![perplexity versus bits per weight]({os.path.basename(svg)})\n\n")
        f.write("| method | format | recipe | bits/weight | s5 ppl | Δ vs fp32 | official |\n")
        f.write("|---|---|---|---|---|---|---|\n")
        for r in rows:
            ref = f"{r['reference']:.4f}" if r["reference"] else "-"
            delta = 100 * (r["ppl"] / FLOAT_PPL - 1)
            f.write(f"| {r['method']} | {r['format']} | `{r['recipe']}` | {r['bits']:.3f} | "
                    f"{r['ppl']:.4f} | {delta:+.1f}% | {ref} |\n")
        f.write("\nllama.cpp's own quantizer on the same model (REFERENCE_RESULTS.md), "
                "for comparison: ")
        f.write(", ".join(f"{n} {b} bits/weight s5 {p}" for n, b, p in LLAMA_CPP) + ".\n")
    print(f"quality-report: wrote {table}" + (f" and {svg}" if plotted else ""))


if __name__ == "__main__":
    main()
