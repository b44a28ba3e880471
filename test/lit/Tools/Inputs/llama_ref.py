"""A float64 pure-Python LLaMA for the model tool tests (model-run.test,
model-generate.test): reads a Hugging Face f32 directory written by
quant-synth (one model.safetensors, tied embeddings) and checks quant-run's
printed results against its own.

  llama_ref.py DIR ppl CONTEXT TOKENS OUTPUT    perplexity of a token file in
      chunks of CONTEXT tokens (each from an empty cache): prints the
      reference's counts, and exits non-zero unless OUTPUT's mean NLL is
      within 1e-5 (relative) and its perplexity is exp(mean NLL).
  llama_ref.py DIR generate "IDS" STEPS OUTPUT  greedy continuation of IDS
      (stopping at BOS or EOS): prints it, and exits non-zero unless OUTPUT
      holds the same ids.
  llama_ref.py - same OUTPUT1 OUTPUT2           exits non-zero unless the two
      printed perplexities agree within 1e-5 (relative).
"""
import json, math, struct, sys
def load(path):
    blob = open(path, "rb").read()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    header.pop("__metadata__", None)
    out = {}
    for name, t in header.items():
        assert t["dtype"] == "F32", name
        b, e = t["data_offsets"]
        values = struct.unpack("<%df" % ((e - b) // 4), blob[8 + n + b:8 + n + e])
        if len(t["shape"]) == 2:
            cols = t["shape"][1]
            values = [values[r * cols:(r + 1) * cols] for r in range(t["shape"][0])]
        out[name] = values
    return out
def printed(path, key):
    for line in open(path):
        if line.startswith(key):
            return float(line[len(key):].split()[0])
    sys.exit("no '%s' line in %s" % (key, path))
model_dir, mode = sys.argv[1], sys.argv[2]
if mode == "same":
    a, b = printed(sys.argv[3], "perplexity:"), printed(sys.argv[4], "perplexity:")
    if abs(a - b) > 1e-5 * abs(a):
        sys.exit("perplexities %r and %r differ" % (a, b))
    print("same perplexity within 1e-05")
    sys.exit(0)
cfg = json.load(open(model_dir + "/config.json"))
W = load(model_dir + "/model.safetensors")
dim, heads, kv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
hs, eps, theta = dim // heads, cfg["rms_norm_eps"], cfg["rope_theta"]
assert cfg["tie_word_embeddings"]
def rmsnorm(x, g):
    r = 1.0 / math.sqrt(sum(v * v for v in x) / len(x) + eps)
    return [gi * v * r for v, gi in zip(x, g)]
def matvec(m, x):
    return [sum(a * b for a, b in zip(row, x)) for row in m]
def rope(vec, pos):
    # Hugging Face rotate_half: pairs (i, i + hs/2) of each head.
    out = list(vec)
    for h in range(len(vec) // hs):
        for i in range(hs // 2):
            c, s = math.cos(pos * theta ** (-2.0 * i / hs)), math.sin(pos * theta ** (-2.0 * i / hs))
            a, b = vec[h * hs + i], vec[h * hs + i + hs // 2]
            out[h * hs + i], out[h * hs + i + hs // 2] = a * c - b * s, b * c + a * s
    return out
def forward(ids):
    """Logits at every position of `ids`, from an empty cache."""
    xs = [list(W["model.embed_tokens.weight"][t]) for t in ids]
    for l in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % l
        ns = [rmsnorm(x, W[p + "input_layernorm.weight"]) for x in xs]
        qs = [rope(matvec(W[p + "self_attn.q_proj.weight"], n), pos) for pos, n in enumerate(ns)]
        ks = [rope(matvec(W[p + "self_attn.k_proj.weight"], n), pos) for pos, n in enumerate(ns)]
        vs = [matvec(W[p + "self_attn.v_proj.weight"], n) for n in ns]
        for pos in range(len(ids)):
            att = []
            for h in range(heads):
                g = h // (heads // kv)
                s = [sum(qs[pos][h * hs + i] * ks[j][g * hs + i] for i in range(hs)) / math.sqrt(hs) for j in range(pos + 1)]
                e = [math.exp(v - max(s)) for v in s]
                att += [sum(e[j] * vs[j][g * hs + i] for j in range(pos + 1)) / sum(e) for i in range(hs)]
            xs[pos] = [a + b for a, b in zip(xs[pos], matvec(W[p + "self_attn.o_proj.weight"], att))]
        for pos in range(len(ids)):
            n = rmsnorm(xs[pos], W[p + "post_attention_layernorm.weight"])
            gate = matvec(W[p + "mlp.gate_proj.weight"], n)
            up = matvec(W[p + "mlp.up_proj.weight"], n)
            hidden = [a / (1 + math.exp(-a)) * b for a, b in zip(gate, up)]
            xs[pos] = [a + b for a, b in zip(xs[pos], matvec(W[p + "mlp.down_proj.weight"], hidden))]
    return [matvec(W["model.embed_tokens.weight"], rmsnorm(x, W["model.norm.weight"])) for x in xs]
if mode == "ppl":
    context, nll, chunks, count = int(sys.argv[3]), [], 0, 0
    for line in open(sys.argv[4]):
        ids = [int(t) for t in line.split()]
        count += len(ids)
        for start in range(0, len(ids), context):
            chunk = ids[start:start + context]
            chunks += 1
            for pos, z in enumerate(forward(chunk)[:-1]):
                m = max(z)
                nll.append(m + math.log(sum(math.exp(v - m) for v in z)) - z[chunk[pos + 1]])
    print("reference: chunks: %d  tokens: %d  scored: %d" % (chunks, count, len(nll)))
    mean = sum(nll) / len(nll)
    got, ppl = printed(sys.argv[5], "mean NLL:"), printed(sys.argv[5], "perplexity:")
    if abs(got - mean) > 1e-5 * mean:
        sys.exit("quant-run: mean NLL %.6f, reference %.6f" % (got, mean))
    if abs(ppl - math.exp(got)) > 1e-5 * ppl:
        sys.exit("quant-run: perplexity %.6f is not exp(mean NLL) = %.6f" % (ppl, math.exp(got)))
    print("quant-run: mean NLL %.6f, reference %.6f: matches" % (got, mean))
elif mode == "generate":
    ids = [int(t) for t in sys.argv[3].split()]
    produced = []
    for step in range(int(sys.argv[4])):
        z = forward(ids)[-1]
        order = sorted(range(len(z)), key=lambda i: -z[i])
        # A near tie would make the f32 argmax a coin toss.
        assert z[order[0]] - z[order[1]] > 1e-3, "near tie at step %d" % step
        if order[0] in (1, 2):
            break
        produced.append(order[0])
        ids.append(order[0])
    print("reference greedy continuation of %s: %s" % (sys.argv[3], " ".join(map(str, produced))))
    got = [int(t) for t in open(sys.argv[5]).read().split()]
    if got != produced:
        sys.exit("quant-run generated %s" % got)
    print("quant-run matches")
