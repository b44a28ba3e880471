#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into test/fuzz/corpus/<target>.

Run from anywhere; needs quant-synth (the build's bin/ or PATH) for the
Hugging Face seed. Seeds are small by design: the fuzzers find the rest.
    python3 test/fuzz/make-seeds.py [path/to/quant-synth]
"""
import hashlib, json, os, re, shutil, struct, subprocess, sys, tempfile

root = os.path.dirname(os.path.abspath(__file__))
corpus = os.path.join(root, "corpus")


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(corpus, target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()[:16]
    open(os.path.join(d, name), "wb").write(data)


def safetensors(tensors, metadata=None):
    header, data = {}, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, payload, shape in tensors:
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + len(payload)]}
        data += payload
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def f32(values):
    return struct.pack("<%df" % len(values), *values)


# safetensors: several dtypes, a scalar, an empty tensor, metadata.
put("safetensors", safetensors([("w", "F32", f32([1, 2, 3, 4]), [2, 2])]))
put("safetensors", safetensors([
    ("a", "BF16", b"\x80\x3f\x00\x40", [2]),
    ("b", "F16", b"\x00\x3c", [1]),
    ("c", "I64", struct.pack("<q", 7), []),
    ("e", "F32", b"", [0, 3]),
    ("i8", "I8", b"\x01\x02\x03", [3]),
], metadata={"format": "pt"}))

# llama2.c: dim 4, hidden 8, 1 layer, 2 heads, 1 KV head, vocab 8, context 4.
dim, hidden, layers, heads, kv, vocab, seq = 4, 8, 1, 2, 1, 8, 4
head = dim // heads
def floats(n):
    return f32([((i * 37) % 11 - 5) / 8.0 for i in range(n)])
sizes = {
    "emb": vocab * dim, "attn_norm": layers * dim, "wq": layers * dim * dim,
    "wk": layers * dim * kv * head, "wv": layers * dim * kv * head,
    "wo": layers * dim * dim, "ffn_norm": layers * dim,
    "w1": layers * hidden * dim, "w2": layers * dim * hidden,
    "w3": layers * hidden * dim, "final_norm": dim,
}
fields = [dim, hidden, layers, heads, kv, vocab, seq]
legacy = struct.pack("<7i", *fields)
for key in ["emb", "attn_norm", "wq", "wk", "wv", "wo", "ffn_norm", "w1",
            "w2", "w3", "final_norm"]:
    legacy += floats(sizes[key])
legacy += floats(seq * head // 2) * 2  # RoPE tables
put("llama2c", legacy)
v1 = struct.pack("<Ii", 0x616B3432, 1) + struct.pack("<7i", *fields) + b"\x01"
v1 += b"\x00" * (256 - len(v1))
for key in ["attn_norm", "ffn_norm", "final_norm", "emb", "wq", "wk", "wv",
            "wo", "w1", "w2", "w3"]:
    v1 += floats(sizes[key])
put("llama2c", v1)

# tokenizer: two bytes of vocabulary size, then a llama2.c tokenizer.bin.
pieces = [b"<unk>", b"<s>", b"</s>"] + [b"<0x%02X>" % i for i in range(4)] + \
    [b" ", b"e", b"t", b" t", b"he", b" the", b"\xc3\xa9", b"Once", b" upon"]
tok = struct.pack("<i", max(len(p) for p in pieces))
for i, p in enumerate(pieces):
    tok += struct.pack("<fi", float(-i), len(p)) + p
put("tokenizer", struct.pack("<H", len(pieces)) + tok)
put("tokenizer", struct.pack("<H", len(pieces) - 4) + tok)

# statistics: two layers, every statistic, K = 3 and 2.
def stats_file():
    tensors = []
    for name, k in [("block0.wq", 3), ("head", 2)]:
        tensors.append((name + ".absmax", "F32", f32([1.5] * k), [k]))
        tensors.append((name + ".mean_abs", "F32", f32([0.5] * k), [k]))
        h = [float(k + 1 if i == j else 1) for i in range(k) for j in range(k)]
        tensors.append((name + ".hessian", "F32", f32(h), [k, k]))
        tensors.append((name + ".count", "I64", struct.pack("<q", 16), []))
    return safetensors(tensors, metadata={"format": "qnt.calibration/1",
                                          "model": "seed"})
put("statistics", stats_file())

# Artifact manifests (the fuzzer seals them with their checksum): a tiny
# model's, with one entry of each kind and one CPU image.
def tensor_type(dtype, shape):
    return {"dtype": dtype, "shape": shape}


def artifact_file(path, size):
    return {"path": path, "bytes": size, "crc32c": "0123abcd"}


manifest = {
    "format": "qnt-artifact", "version": 1, "producer": "quant-compile seed",
    "manifest_crc32c": "00000000",
    "model": {"architecture": "llama", "dim": 64, "hidden_dim": 176,
              "n_layers": 1, "n_heads": 8, "n_kv_heads": 4, "vocab_size": 512,
              "max_seq_len": 128, "rope_theta": 10000.0, "rms_eps": 1e-05,
              "tied_embeddings": True, "rope_style": "interleaved"},
    "entries": [
        {"name": "embed", "inputs": [tensor_type("I32", [-1])],
         "params": [dict(tensor_type("F32", [512, 64]), name="tok")],
         "results": [tensor_type("F32", [-1, 64])]},
        {"name": "block0",
         "inputs": [tensor_type("F32", [-1, 64]), tensor_type("I64", []),
                    tensor_type("F32", [-1, 32]), tensor_type("F32", [-1, 32])],
         "params": [dict(tensor_type("I8", [64, 32]), name="wq.codes")],
         "results": [tensor_type("F32", [-1, 64]), tensor_type("F32", [-1, 32]),
                     tensor_type("F32", [-1, 32])]},
        {"name": "head", "inputs": [tensor_type("F32", [-1, 64])], "params": [],
         "results": [tensor_type("F32", [-1, 512])]}],
    "weights": artifact_file("weights.safetensors", 4096),
    "tokenizer": artifact_file("tokenizer.bin", 100),
    "cpu_images": [{"name": "native",
                    "file": artifact_file("cpu/native.so", 8192),
                    "triple": "x86_64-unknown-linux-gnu", "cpu": "znver5",
                    "required_features": ["avx2", "avx512f"], "openmp": True,
                    "activations": "int8", "threads": 0}],
    "layers": [{"function": "block0", "weight": "wq", "shape": [64, 64],
                "encoding": "#qnt.uniform<bits = 4>", "bits_per_weight": 4.5}],
    "recipe": {"source": "model.bin"}}
put("manifest", json.dumps(manifest, indent=2))

# IR: the cases of the dialect and pass tests, without their CHECK lines.
lit = os.path.join(root, "..", "lit")
for rel in ["Dialect/ops.mlir", "Passes/qnt-fuse-dequant-matmul.mlir",
            "Passes/qnt-bind-params.mlir", "Passes/qnt-insert-observers.mlir",
            "Passes/qnt-lower-matmul-fused.mlir"]:
    text = open(os.path.join(lit, rel)).read()
    for case in text.split("// -----"):
        lines = [l for l in case.splitlines()
                 if not l.lstrip().startswith("//")]
        case = "\n".join(lines).strip()
        if case:
            put("ir", case + "\n")

# Hugging Face: config.json, "#index", and the index of the fuzzer's
# two-shard model (quant-synth's tiny preset, f32, seed 1).
synth = sys.argv[1] if len(sys.argv) > 1 else shutil.which("quant-synth")
if synth:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "hf")
        subprocess.run([synth, "--preset", "tiny", "--format", "hf", "--dtype",
                        "f32", "--shards", "2", "--seed", "1", "-o", out],
                       check=True, capture_output=True)
        config = open(os.path.join(out, "config.json")).read()
        index = open(os.path.join(out, "model.safetensors.index.json")).read()
        put("hf-checkpoint", config + "\n#index\n" + index)
        put("hf-checkpoint", config)
else:
    print("make-seeds: no quant-synth; hf-checkpoint seeds not written",
          file=sys.stderr)
