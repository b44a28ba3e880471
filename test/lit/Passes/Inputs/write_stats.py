# Writes a qnt.calibration/1 statistics file for lit tests:
#   write_stats.py OUT LAYER=H00,H01,...;LAYER2=... [--count N] [--format F]
# Each layer gets a K x K Hessian (row-major, K = sqrt(entries)), absmax of
# ones, mean_abs of ones or the values after '@' (LAYER=H...@M0,M1,...), the
# signed mean when given after '#' (LAYER=H...#E0,E1,... or H...@M...#E...),
# absmax of the values after '!' when given (last: LAYER=H...!A0,A1,...),
# and a count.
import json, math, struct, sys

out, spec = sys.argv[1], sys.argv[2]
count = int(sys.argv[sys.argv.index("--count") + 1]) if "--count" in sys.argv else 100
fmt = sys.argv[sys.argv.index("--format") + 1] if "--format" in sys.argv else "qnt.calibration/1"
tensors = []
for entry in spec.split(";"):
    name, values = entry.split("=")
    values, _, absmaxes = values.partition("!")
    values, _, signed = values.partition("#")
    values, _, means = values.partition("@")
    h = [float(v) for v in values.split(",")]
    k = int(round(math.sqrt(len(h))))
    m = [float(v) for v in means.split(",")] if means else [1.0] * k
    tensors.append((name + ".hessian", "F32", [k, k], struct.pack("<%df" % len(h), *h)))
    a = [float(v) for v in absmaxes.split(",")] if absmaxes else [1.0] * k
    tensors.append((name + ".absmax", "F32", [k], struct.pack("<%df" % k, *a)))
    tensors.append((name + ".mean_abs", "F32", [k], struct.pack("<%df" % k, *m)))
    if signed:
        e = [float(v) for v in signed.split(",")]
        tensors.append((name + ".mean", "F32", [k], struct.pack("<%df" % k, *e)))
    tensors.append((name + ".count", "I64", [], struct.pack("<q", count)))
header, data = {"__metadata__": {"format": fmt}}, b""
for name, dtype, shape, blob in tensors:
    header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(blob)]}
    data += blob
text = json.dumps(header).encode()
text += b" " * (-len(text) % 8)
with open(out, "wb") as f:
    f.write(struct.pack("<Q", len(text)) + text + data)
