// quant-run with weights in safetensors files: qnt.param ops are bound to
// tensors of the files the module lists (qnt.param_files) or that --params
// adds, memory-mapped, never compiled into the code. The weight and the
// expected results are those of quant-run.mlir: W [4, 8] quantized int4 asym
// per channel gives y = [[24.5, 172, 34, 0], [7.25, 18.5, 8.75, 0]] exactly,
// the float W gives [[25, 172, 37, 0], [7.875, 18.5, 8.5, 0]].

// RUN: rm -rf %t && mkdir -p %t
// RUN: sed -n 's|^// PY: \{0,1\}||p' %s | %python - %t

// The float weight read from the file listed by the module.
// RUN: sed "s|@WEIGHTS@|%t/w.safetensors|" %s | quant-run --inputs %t/x.safetensors --expect %t/float.safetensors | FileCheck %s --check-prefix=FLOAT
// FLOAT: ran @linear: 1 inputs, 1 parameters, 1 results
// FLOAT-NEXT: result0: max abs diff 0.000000e+00, relative 0.000000e+00 (rtol 1.000000e-05) OK

// Quantized by qnt-rtn into a second file: three parameters (codes, scales,
// zeros) read from the second file through the module's list of both.
// RUN: sed "s|@WEIGHTS@|%t/w.safetensors|" %s | quant-opt --qnt-rtn="bits=4 granularity=per-channel output=%t/q.safetensors" --qnt-fuse-dequant-matmul -o %t/quantized.mlir
// RUN: quant-run %t/quantized.mlir --inputs %t/x.safetensors --expect %t/expected.safetensors | FileCheck %s --check-prefix=QUANTIZED
// QUANTIZED: ran @linear: 1 inputs, 3 parameters, 1 results
// QUANTIZED-NEXT: result0: max abs diff 0.000000e+00, relative 0.000000e+00 (rtol 1.000000e-05) OK

// A module that lists no files, with the file given by --params.
// RUN: sed "s|attributes {qnt.param_files = \[\"@WEIGHTS@\"\]} ||" %s | quant-run --params %t/w.safetensors --inputs %t/x.safetensors --expect %t/float.safetensors | FileCheck %s --check-prefix=FLOAT
// Without it, the parameter cannot be found.
// RUN: sed "s|attributes {qnt.param_files = \[\"@WEIGHTS@\"\]} ||" %s | not quant-run --inputs %t/x.safetensors 2>&1 | FileCheck %s --check-prefix=NO-FILES
// NO-FILES: error: parameter 'w' not found (the module lists no qnt.param_files)

// A weight stored as f16 is widened to f32 when bound.
// RUN: sed "s|@WEIGHTS@|%t/w16.safetensors|" %s | quant-run --inputs %t/x.safetensors --expect %t/float.safetensors | FileCheck %s --check-prefix=FLOAT

// PY: import json, os, struct, sys
// PY: out = sys.argv[1]
// PY: def write(name, tensors):
// PY:     header, data = {}, b""
// PY:     for key, dtype, values, shape in tensors:
// PY:         payload = struct.pack("<%d%s" % (len(values), {"F32": "f", "F16": "e"}[dtype]), *values)
// PY:         header[key] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(payload)]}
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
// PY: flat = lambda m: [v for r in m for v in r]
// PY: write("w.safetensors", [("w", "F32", flat(w), [4, 8])])
// PY: write("w16.safetensors", [("w", "F16", flat(w), [4, 8])])
// PY: write("x.safetensors", [("input0", "F32", flat(x), [2, 8])])
// PY: write("expected.safetensors", [("result0", "F32", matmul_t(x, wq), [2, 4])])
// PY: write("float.safetensors", [("result0", "F32", matmul_t(x, w), [2, 4])])

module attributes {qnt.param_files = ["@WEIGHTS@"]} {
  func.func @linear(%x: tensor<2x8xf32>) -> tensor<2x4xf32> {
    %w = qnt.param "w" : tensor<4x8xf32>
    %zero = arith.constant 0.0 : f32
    %e = tensor.empty() : tensor<2x4xf32>
    %acc = linalg.fill ins(%zero : f32) outs(%e : tensor<2x4xf32>) -> tensor<2x4xf32>
    %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                        affine_map<(m, n, k) -> (n, k)>,
                                        affine_map<(m, n, k) -> (m, n)>]
        ins(%x, %w : tensor<2x8xf32>, tensor<4x8xf32>) outs(%acc : tensor<2x4xf32>) -> tensor<2x4xf32>
    return %y : tensor<2x4xf32>
  }
}
