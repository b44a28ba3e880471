// qnt-rtn errors: bad options, weights the encoding cannot store, and
// problems with parameter files. Every error exits non-zero and leaves
// neither a quantized parameter file nor an -o output behind. Errors without
// a source line (options, reported on the implicit module) are checked with
// FileCheck; located ones with -verify-diagnostics.

// RUN: rm -rf %t && split-file %s %t
// RUN: sed -n 's|^// PY: \{0,1\}||p' %s | %python - %t/w.safetensors
// RUN: cp %t/w.safetensors %t/w.orig

// PY: import json, struct, sys
// PY: data = struct.pack("<16f", *range(16)) + bytes(range(16))
// PY: header = json.dumps({"w": {"dtype": "F32", "shape": [2, 8], "data_offsets": [0, 64]},
// PY:                      "codes": {"dtype": "I8", "shape": [2, 8], "data_offsets": [64, 80]}}).encode()
// PY: open(sys.argv[1], "wb").write(struct.pack("<Q", len(header)) + header + data)

//===----------------------------------------------------------------------===//
// Options.
//===----------------------------------------------------------------------===//

// More than 8 bits.
// RUN: not quant-opt %t/const.mlir --qnt-rtn="bits=9" -o %t/out.mlir 2>&1 | FileCheck %s --check-prefix=BITS9
// BITS9: const.mlir:0:0: error: qnt-rtn: bits must be in 2..8, got
// No -o output is left after the failure.
// RUN: not test -e %t/out.mlir

// An unknown policy for indivisible groups.
// RUN: not quant-opt %t/const.mlir --qnt-rtn="indivisible-groups=maybe" 2>&1 | FileCheck %s --check-prefix=INDIV
// INDIV: error: qnt-rtn: unknown indivisible-groups 'maybe'; expected ragged, per-channel or error

// One bit.
// RUN: not quant-opt %t/const.mlir --qnt-rtn="bits=1" 2>&1 | FileCheck %s --check-prefix=BITS1
// BITS1: error: qnt-rtn: bits must be in 2..8, got

// An unknown grid.
// RUN: not quant-opt %t/const.mlir --qnt-rtn="format=e9m9" 2>&1 | FileCheck %s --check-prefix=FORMAT
// FORMAT: error: qnt-rtn: unknown format 'e9m9'; expected int, e2m1, e3m2, e2m3, e4m3, e5m2, e1m1 or e2m0

// An unknown granularity.
// RUN: not quant-opt %t/const.mlir --qnt-rtn="granularity=per-row" 2>&1 | FileCheck %s --check-prefix=GRANULARITY
// GRANULARITY: error: qnt-rtn: unknown granularity 'per-row'; expected per-tensor, per-channel or per-group

// A zero group size.
// RUN: not quant-opt %t/const.mlir --qnt-rtn="group-size=0" 2>&1 | FileCheck %s --check-prefix=GROUP0
// GROUP0: error: qnt-rtn: group-size must be positive, got

// A group size with per-channel granularity.
// RUN: not quant-opt %t/const.mlir --qnt-rtn="granularity=per-channel group-size=32" 2>&1 | FileCheck %s --check-prefix=GROUP-CHANNEL
// GROUP-CHANNEL: error: qnt-rtn: group-size is only meaningful with granularity=per-group

// bits given with a minifloat format, which implies them.
// RUN: not quant-opt %t/const.mlir --qnt-rtn="format=e2m1 bits=4" 2>&1 | FileCheck %s --check-prefix=E2M1-BITS
// E2M1-BITS: error: qnt-rtn: bits is implied by format=e2m1 and cannot be given

// symmetric given with a minifloat format.
// RUN: not quant-opt %t/const.mlir --qnt-rtn="format=e4m3 symmetric=true" 2>&1 | FileCheck %s --check-prefix=E4M3-SYM
// E4M3-SYM: error: qnt-rtn: minifloat formats are symmetric; symmetric cannot be given with format=e4m3

// A value that is not a number.
// RUN: not quant-opt %t/const.mlir --qnt-rtn="bits=four" 2>&1 | FileCheck %s --check-prefix=NOT-A-NUMBER
// NOT-A-NUMBER: for the --bits option: 'four' value invalid

//===----------------------------------------------------------------------===//
// A weight the encoding cannot store: located on the matmul.
//===----------------------------------------------------------------------===//

// RUN: quant-opt %t/const.mlir --qnt-rtn="group-size=128 indivisible-groups=error" -verify-diagnostics -o /dev/null
// RUN: not quant-opt %t/const.mlir --qnt-rtn="group-size=128 indivisible-groups=error" -o %t/out.mlir 2>/dev/null
// RUN: not test -e %t/out.mlir

//--- const.mlir
// K = 100 inputs: a group size of 128 does not divide it, which is an error
// with indivisible-groups=error (by default the one group is ragged).
func.func @k100(%x: tensor<3x100xf32>, %acc: tensor<3x2xf32>) -> tensor<3x2xf32> {
  %w = arith.constant dense<1.0> : tensor<2x100xf32>
  // expected-error@+1 {{'linalg.matmul' op qnt-rtn: group size 128 does not divide K = 100 of layer 'k100.linear0' (indivisible-groups=error)}}
  %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                      affine_map<(m, n, k) -> (n, k)>,
                                      affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %w : tensor<3x100xf32>, tensor<2x100xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  return %y : tensor<3x2xf32>
}

//===----------------------------------------------------------------------===//
// Parameter files, output file.
//===----------------------------------------------------------------------===//

// qnt.param weights without output=.
// RUN: sed "s|@WEIGHTS@|%t/w.safetensors|" %t/param.mlir | not quant-opt --qnt-rtn="granularity=per-channel" 2>&1 | FileCheck %s --check-prefix=NO-OUTPUT
// NO-OUTPUT: <stdin>:1:1: error: qnt-rtn: weights come from qnt.param; give output=<file.safetensors> for the quantized parameters

// output= names the input file, directly or through another path.
// RUN: sed "s|@WEIGHTS@|%t/w.safetensors|" %t/param.mlir | not quant-opt --qnt-rtn="granularity=per-channel output=%t/w.safetensors" 2>&1 | FileCheck %s --check-prefix=SAME-FILE -DFILE=%t/w.safetensors
// RUN: sed "s|@WEIGHTS@|%t/w.safetensors|" %t/param.mlir | not quant-opt --qnt-rtn="granularity=per-channel output=%t/./w.safetensors" 2>&1 | FileCheck %s --check-prefix=SAME-FILE -DFILE=%t/./w.safetensors
// RUN: ln -s w.safetensors %t/link.safetensors
// RUN: sed "s|@WEIGHTS@|%t/w.safetensors|" %t/param.mlir | not quant-opt --qnt-rtn="granularity=per-channel output=%t/link.safetensors" 2>&1 | FileCheck %s --check-prefix=SAME-FILE -DFILE=%t/link.safetensors
// SAME-FILE: error: qnt-rtn: output '[[FILE]]' is one of the input parameter files; quantized weights go to a new file
// RUN: cmp %t/w.safetensors %t/w.orig

// An output directory that does not exist.
// RUN: sed "s|@WEIGHTS@|%t/w.safetensors|" %t/param.mlir | not quant-opt --qnt-rtn="granularity=per-channel output=%t/missing/q.safetensors" 2>&1 | FileCheck %s --check-prefix=NO-DIR
// NO-DIR: error: qnt-rtn: {{.*}}missing{{.*}}: cannot create spill file
// RUN: not test -e %t/missing

//--- param.mlir
module attributes {qnt.param_files = ["@WEIGHTS@"]} {
  func.func @f(%x: tensor<3x8xf32>, %acc: tensor<3x2xf32>) -> tensor<3x2xf32> {
    %w = qnt.param "w" : tensor<2x8xf32>
    %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                        affine_map<(m, n, k) -> (n, k)>,
                                        affine_map<(m, n, k) -> (m, n)>]
        ins(%x, %w : tensor<3x8xf32>, tensor<2x8xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
    return %y : tensor<3x2xf32>
  }
}

// Located parameter errors, one per split; then no output file exists and the
// input file is unchanged.
// RUN: sed "s|@WEIGHTS@|%t/w.safetensors|g; s|@MISSING@|%t/missing.safetensors|g" %t/param-errors.mlir \
// RUN:   | quant-opt -split-input-file --qnt-rtn="granularity=per-channel output=%t/q.safetensors" -verify-diagnostics
// RUN: sed "s|@WEIGHTS@|%t/w.safetensors|g; s|@MISSING@|%t/missing.safetensors|g" %t/param-errors.mlir \
// RUN:   | not quant-opt -split-input-file --qnt-rtn="granularity=per-channel output=%t/q.safetensors" -o %t/out.mlir 2>/dev/null
// RUN: not test -e %t/q.safetensors
// RUN: not test -e %t/out.mlir
// RUN: cmp %t/w.safetensors %t/w.orig

//--- param-errors.mlir
// A parameter file that does not exist: the error names it.
// expected-error@+1 {{cannot open parameter file: @MISSING@: cannot open: No such file or directory}}
module attributes {qnt.param_files = ["@MISSING@"]} {
  func.func @missing_file(%x: tensor<3x8xf32>, %acc: tensor<3x2xf32>) -> tensor<3x2xf32> {
    %w = qnt.param "w" : tensor<2x8xf32>
    %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                        affine_map<(m, n, k) -> (n, k)>,
                                        affine_map<(m, n, k) -> (m, n)>]
        ins(%x, %w : tensor<3x8xf32>, tensor<2x8xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
    return %y : tensor<3x2xf32>
  }
}

// -----

// A name that no file holds: the error lists the files searched.
module attributes {qnt.param_files = ["@WEIGHTS@"]} {
  func.func @not_found(%x: tensor<3x8xf32>, %acc: tensor<3x2xf32>) -> tensor<3x2xf32> {
    // expected-error@+2 {{parameter 'layers.0.wq' not found}}
    // expected-note@+1 {{searched @WEIGHTS@}}
    %w = qnt.param "layers.0.wq" : tensor<2x8xf32>
    %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                        affine_map<(m, n, k) -> (n, k)>,
                                        affine_map<(m, n, k) -> (m, n)>]
        ins(%x, %w : tensor<3x8xf32>, tensor<2x8xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
    return %y : tensor<3x2xf32>
  }
}

// -----

// A stored 2x8 tensor used as 8x2 (a plain matmul weight).
module attributes {qnt.param_files = ["@WEIGHTS@"]} {
  func.func @shape_mismatch(%x: tensor<3x8xf32>, %acc: tensor<3x2xf32>) -> tensor<3x2xf32> {
    // expected-error@+1 {{parameter 'w' in @WEIGHTS@ is 2x8 F32, which cannot be read as 'tensor<8x2xf32>'}}
    %w = qnt.param "w" : tensor<8x2xf32>
    %y = linalg.matmul ins(%x, %w : tensor<3x8xf32>, tensor<8x2xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
    return %y : tensor<3x2xf32>
  }
}

// -----

// An integer parameter as a matmul weight cannot be quantized.
module attributes {qnt.param_files = ["@WEIGHTS@"]} {
  func.func @integer_param(%x: tensor<3x8xi8>, %acc: tensor<3x2xi32>) -> tensor<3x2xi32> {
    // expected-error@+1 {{parameter 'codes' is not a float tensor}}
    %w = qnt.param "codes" : tensor<2x8xi8>
    %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                        affine_map<(m, n, k) -> (n, k)>,
                                        affine_map<(m, n, k) -> (m, n)>]
        ins(%x, %w : tensor<3x8xi8>, tensor<2x8xi8>) outs(%acc : tensor<3x2xi32>) -> tensor<3x2xi32>
    return %y : tensor<3x2xi32>
  }
}

// -----

// The second weight fails after the first was quantized: still no output file.
module attributes {qnt.param_files = ["@WEIGHTS@"]} {
  func.func @second_fails(%x: tensor<3x8xf32>, %acc: tensor<3x2xf32>) -> (tensor<3x2xf32>, tensor<3x2xf32>) {
    %w = qnt.param "w" : tensor<2x8xf32>
    %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                        affine_map<(m, n, k) -> (n, k)>,
                                        affine_map<(m, n, k) -> (m, n)>]
        ins(%x, %w : tensor<3x8xf32>, tensor<2x8xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
    // expected-error@+2 {{parameter 'v' not found}}
    // expected-note@+1 {{searched @WEIGHTS@}}
    %v = qnt.param "v" : tensor<2x8xf32>
    %z = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                        affine_map<(m, n, k) -> (n, k)>,
                                        affine_map<(m, n, k) -> (m, n)>]
        ins(%x, %v : tensor<3x8xf32>, tensor<2x8xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
    return %y, %z : tensor<3x2xf32>, tensor<3x2xf32>
  }
}
