"""Reads quant-compile's log from stdin and prints, for every block the
block trainer reported ("<pass>: block i/n: loss A -> B in ..."), whether
training lowered its loss: "block i/n: lower" or "block i/n: not lower"."""
import re
import sys

pattern = re.compile(r"block (\d+/\d+): loss (\S+) -> (\S+) in ")
for line in sys.stdin:
    match = pattern.search(line)
    if match:
        before, after = float(match.group(2)), float(match.group(3))
        verdict = "lower" if after < before else "not lower"
        print(f"block {match.group(1)}: {verdict} ({before:g} -> {after:g})")
