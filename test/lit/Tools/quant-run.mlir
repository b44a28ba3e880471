// quant-run end to end: transpose-B matmuls with constant weights, quantized
// by qnt-rtn (@linear_int8: int8 symmetric per channel; @linear: int4
// asymmetric per channel), fused into qnt.matmul, JIT-compiled and run on the
// CPU. Inputs and expected results are written by the PY lines; dump.py prints
// a result file.
//
// @linear: rows of W and their hand-computed RTN dequantization (s, z; docs/PackedLayouts.md):
//   [-1, 0, 0.125, 0.375, 0.625, 2.75, -0.5, 1] s 0.25 z 4 -> [-1, 0, 0, 0.5, 0.5, 2.75, -0.5, 1]
//   [0, 1, 2, 3, 4, 5, 6, 7.5]                  s 0.5  z 0 -> unchanged
//   [-2, 5.5, 0.25, 1.25, -0.75, 3, 0, 1]       s 0.5  z 4 -> [-2, 5.5, 0, 1, -1, 3, 0, 1]
//   [0, 0, 0, 0, 0, 0, 0, 0]                    s 1    z 0 -> unchanged
// With x = [[1, 2, 3, 4, 5, 6, 7, 8], [-1, 0.5, 2, -3, 0, 1, -2, 4]], every
// product and sum is exact in f32: y = x Wq^T = [[24.5, 172, 34, 0],
// [7.25, 18.5, 8.75, 0]], while the unquantized W gives [[25, 172, 37, 0],
// [7.875, 18.5, 8.5, 0]].

// RUN: rm -rf %t && mkdir -p %t
// RUN: sed -n 's|^// PY: \{0,1\}||p' %s | %python - %t
// RUN: quant-opt %s --qnt-rtn="bits=4 granularity=per-channel" --qnt-fuse-dequant-matmul -o %t/linear.mlir

// int8 symmetric per channel, piped straight into quant-run (@linear_int8,
// rows exactly on the grid or on ties: see the function).
// RUN: quant-opt %s --qnt-rtn="bits=8 symmetric=true granularity=per-channel" --qnt-fuse-dequant-matmul \
// RUN:   | quant-run --entry=linear_int8 --seed=1 --output %t/int8-seed1.safetensors | FileCheck %s --check-prefix=RAN8
// RAN8: ran @linear_int8: 1 inputs, 0 parameters, 1 results in {{[0-9]+\.[0-9]+}} ms
// RUN: %python %t/dump.py %t/int8-seed1.safetensors | FileCheck %s --check-prefix=SEED
// RUN: quant-opt %s --qnt-rtn="bits=8 symmetric=true granularity=per-channel" --qnt-fuse-dequant-matmul \
// RUN:   | quant-run --entry=linear_int8 --inputs %t/x.safetensors --expect %t/expected-int8.safetensors | FileCheck %s --check-prefix=EXACT8
// EXACT8: result0: max abs diff 0.000000e+00, relative 0.000000e+00 (rtol 1.000000e-05) OK
// Without quantization the ties (0.5, 1.5, -0.25, 1.25) are not rounded.
// RUN: not quant-run %s --entry=linear_int8 --inputs %t/x.safetensors --expect %t/expected-int8.safetensors | FileCheck %s --check-prefix=MISMATCH8
// MISMATCH8: result0: {{.*}} MISMATCH

// Generated inputs (N(0, 1) from --seed): the summary line, a result file,
// and the same results for the same seed.
// RUN: quant-run %t/linear.mlir --entry=linear --seed=1 --output %t/seed1.safetensors | FileCheck %s --check-prefix=RAN
// RAN: ran @linear: 1 inputs, 0 parameters, 1 results in {{[0-9]+\.[0-9]+}} ms
// RUN: %python %t/dump.py %t/seed1.safetensors | FileCheck %s --check-prefix=SEED
// SEED: result0 F32 [2, 4]
// RUN: quant-run %t/linear.mlir --entry=linear --seed=1 --output %t/seed1-again.safetensors
// RUN: cmp %t/seed1.safetensors %t/seed1-again.safetensors
// RUN: quant-run %t/linear.mlir --entry=linear --seed=2 --output %t/seed2.safetensors
// RUN: not cmp -s %t/seed1.safetensors %t/seed2.safetensors

// Given inputs: the exact results, written to --output and compared by --expect.
// RUN: quant-run %t/linear.mlir --entry=linear --inputs %t/x.safetensors --output %t/y.safetensors --expect %t/expected.safetensors | FileCheck %s --check-prefix=EXACT
// EXACT: ran @linear: 1 inputs, 0 parameters, 1 results
// EXACT-NEXT: result0: max abs diff 0.000000e+00, relative 0.000000e+00 (rtol 1.000000e-05) OK
// RUN: %python %t/dump.py %t/y.safetensors | FileCheck %s --check-prefix=VALUES
// VALUES: result0 F32 [2, 4] [24.5, 172.0, 34.0, 0.0, 7.25, 18.5, 8.75, 0.0]

// The unquantized product differs by 0.5 in y[0][0] and by 3 in y[0][2]
// (relative 3 / 172 = 1.7e-2): a mismatch and a non-zero exit.
// RUN: not quant-run %t/linear.mlir --entry=linear --inputs %t/x.safetensors --expect %t/float.safetensors | FileCheck %s --check-prefix=MISMATCH
// MISMATCH: result0: max abs diff 3.000000e+00, relative 1.744186e-02 (rtol 1.000000e-05) MISMATCH
// A tolerance above that accepts it.
// RUN: quant-run %t/linear.mlir --entry=linear --inputs %t/x.safetensors --expect %t/float.safetensors --rtol 0.02 | FileCheck %s --check-prefix=TOLERATED
// TOLERATED: result0: max abs diff 3.000000e+00, relative 1.744186e-02 (rtol 2.000000e-02) OK

// The float program, never quantized, reproduces the float results exactly.
// RUN: quant-run %s --entry=linear --inputs %t/x.safetensors --expect %t/float.safetensors | FileCheck %s --check-prefix=FLOAT
// FLOAT: result0: max abs diff 0.000000e+00, relative 0.000000e+00 (rtol 1.000000e-05) OK

// PY: import json, os, struct, sys
// PY: out = sys.argv[1]
// PY: def write(name, tensors):
// PY:     header, data = {}, b""
// PY:     for key, values, shape in tensors:
// PY:         payload = struct.pack("<%df" % len(values), *values)
// PY:         header[key] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + len(payload)]}
// PY:         data += payload
// PY:     text = json.dumps(header).encode()
// PY:     open(os.path.join(out, name), "wb").write(struct.pack("<Q", len(text)) + text + data)
// PY: def matmul_t(x, w):
// PY:     return [sum(a * b for a, b in zip(row, col)) for row in x for col in w]
// PY: x = [[1, 2, 3, 4, 5, 6, 7, 8], [-1, 0.5, 2, -3, 0, 1, -2, 4]]
// PY: w = [[-1, 0, 0.125, 0.375, 0.625, 2.75, -0.5, 1], [0, 1, 2, 3, 4, 5, 6, 7.5],
// PY:      [-2, 5.5, 0.25, 1.25, -0.75, 3, 0, 1], [0] * 8]
// PY: wq = [[-1, 0, 0, 0.5, 0.5, 2.75, -0.5, 1], [0, 1, 2, 3, 4, 5, 6, 7.5],
// PY:       [-2, 5.5, 0, 1, -1, 3, 0, 1], [0] * 8]
// PY: write("x.safetensors", [("input0", [v for r in x for v in r], [2, 8])])
// PY: write("expected.safetensors", [("result0", matmul_t(x, wq), [2, 4])])
// PY: write("float.safetensors", [("result0", matmul_t(x, w), [2, 4])])
// PY: w8q = [[127, -64, 0, 2, 3, -3, 100, 7], [-3.96875, 0, 0.0625, 1, 2, -2, 0.5, 0.25],
// PY:        [0] * 8, [63.5, 0, 1, 10, -10, 1, 0, 2]]
// PY: write("expected-int8.safetensors", [("result0", matmul_t(x, w8q), [2, 4])])
// PY: open(os.path.join(out, "dump.py"), "w").write('''
// PY: import json, struct, sys
// PY: blob = open(sys.argv[1], "rb").read()
// PY: n = struct.unpack("<Q", blob[:8])[0]
// PY: header = json.loads(blob[8:8 + n])
// PY: header.pop("__metadata__", None)
// PY: for name in sorted(header):
// PY:     t = header[name]
// PY:     b, e = t["data_offsets"]
// PY:     values = list(struct.unpack("<%df" % ((e - b) // 4), blob[8 + n + b:8 + n + e]))
// PY:     print(name, t["dtype"], t["shape"], values)
// PY: ''')

func.func @linear(%x: tensor<2x8xf32>) -> tensor<2x4xf32> {
  %w = arith.constant dense<[[-1.0, 0.0, 0.125, 0.375, 0.625, 2.75, -0.5, 1.0],
                             [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.5],
                             [-2.0, 5.5, 0.25, 1.25, -0.75, 3.0, 0.0, 1.0],
                             [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]> : tensor<4x8xf32>
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<2x4xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%e : tensor<2x4xf32>) -> tensor<2x4xf32>
  %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                      affine_map<(m, n, k) -> (n, k)>,
                                      affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %w : tensor<2x8xf32>, tensor<4x8xf32>) outs(%acc : tensor<2x4xf32>) -> tensor<2x4xf32>
  return %y : tensor<2x4xf32>
}

// int8 symmetric per channel: s = absmax / 127 is 1, 1/32, 1 (zero row) and
// 0.5, so q = rhe(w / s) is exact, with ties 0.5 -> 0, 1.5 -> 2, 2.5 -> 2:
//   [127, -64, 0.5, 1.5, 3, -3, 100, 7]                       -> [127, -64, 0, 2, 3, -3, 100, 7]
//   [-3.96875, 0.015625, 0.046875, 1, 2, -2, 0.5, 0.25]       -> [-3.96875, 0, 0.0625, 1, 2, -2, 0.5, 0.25]
//   [0, 0, 0, 0, 0, 0, 0, 0]                                  -> unchanged
//   [63.5, -0.25, 0.75, 10, -10, 1.25, 0, 2]                  -> [63.5, -0, 1, 10, -10, 1, 0, 2]
func.func @linear_int8(%x: tensor<2x8xf32>) -> tensor<2x4xf32> {
  %w = arith.constant dense<[[127.0, -64.0, 0.5, 1.5, 3.0, -3.0, 100.0, 7.0],
                             [-3.96875, 0.015625, 0.046875, 1.0, 2.0, -2.0, 0.5, 0.25],
                             [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
                             [63.5, -0.25, 0.75, 10.0, -10.0, 1.25, 0.0, 2.0]]> : tensor<4x8xf32>
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<2x4xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%e : tensor<2x4xf32>) -> tensor<2x4xf32>
  %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                      affine_map<(m, n, k) -> (n, k)>,
                                      affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %w : tensor<2x8xf32>, tensor<4x8xf32>) outs(%acc : tensor<2x4xf32>) -> tensor<2x4xf32>
  return %y : tensor<2x4xf32>
}
