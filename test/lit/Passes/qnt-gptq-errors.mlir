// qnt-gptq's errors: located on the weight (statistics) or the matmul
// (what GPTQ cannot do), and nothing is written on failure.

// RUN: rm -rf %t && mkdir -p %t
// Statistics for the first function only, a 3-channel Hessian for the
// second (its weight has K = 4), a negative diagonal for the third, and an
// indefinite Hessian for the fourth (GPTQ raises the damping and says so).
// RUN: %python %S/Inputs/write_stats.py %t/s.safetensors "mismatch.linear0=1,0,0,0,1,0,0,0,1;negative.linear0=1,0,0,0,0,-1,0,0,0,0,1,0,0,0,0,1;indefinite.linear0=1,3,0,0,3,1,0,0,0,0,1,0,0,0,0,1"
// RUN: quant-opt %s -split-input-file --qnt-gptq="stats=%t/s.safetensors granularity=per-channel" -verify-diagnostics -o /dev/null
// RUN: not quant-opt %s --qnt-gptq="stats=%t/s.safetensors granularity=per-channel" -o %t/out.mlir 2>/dev/null
// RUN: not test -e %t/out.mlir

// Without stats= GPTQ has no Hessian.
// RUN: not quant-opt %s --qnt-gptq 2>&1 | FileCheck %s --check-prefix=NO-STATS
// NO-STATS: error: qnt-gptq: no statistics for layer 'missing.linear0'; give stats=<file> from quant-calibrate

// A file that is not a statistics file, and one that does not exist.
// RUN: %python %S/Inputs/write_stats.py %t/other.safetensors "missing.linear0=1" --format something
// RUN: not quant-opt %s --qnt-gptq="stats=%t/other.safetensors" 2>&1 | FileCheck %s --check-prefix=FORMAT
// FORMAT: error: qnt-gptq: {{.*}}other.safetensors: not a statistics file (metadata "format" must be "qnt.calibration/1")
// RUN: not quant-opt %s --qnt-gptq="stats=%t/none.safetensors" 2>&1 | FileCheck %s --check-prefix=ABSENT
// ABSENT: error: qnt-gptq: {{.*}}none.safetensors

// Non-finite statistics are rejected when the file is read.
// RUN: %python %S/Inputs/write_stats.py %t/nan.safetensors "missing.linear0=1,0,0,nan"
// RUN: not quant-opt %s --qnt-gptq="stats=%t/nan.safetensors" 2>&1 | FileCheck %s --check-prefix=NAN
// NAN: error: qnt-gptq: {{.*}}nan.safetensors: 'missing.linear0.hessian' has a non-finite value at flat index 3

// Bad options.
// RUN: not quant-opt %s --qnt-gptq="stats=%t/s.safetensors block-size=0" 2>&1 | FileCheck %s --check-prefix=BLOCK
// BLOCK: error: qnt-gptq: block-size must be positive, got 0
// RUN: not quant-opt %s --qnt-gptq="stats=%t/s.safetensors layers=indefinite overrides=indef:act-orde=1" 2>&1 | FileCheck %s --check-prefix=OVERRIDE
// OVERRIDE: error: 'linalg.matmul' op qnt-gptq cannot quantize 'indefinite.linear0': unknown GPTQ option 'act-orde'
// RUN: not quant-opt %s --qnt-gptq="stats=%t/s.safetensors layers=nothing-matches" 2>&1 | FileCheck %s --check-prefix=LAYERS
// LAYERS: error: qnt-gptq: layers pattern 'nothing-matches' selects no weight
// RUN: not quant-opt %s --qnt-gptq="stats=%t/s.safetensors overrides=indef-act-order" 2>&1 | FileCheck %s --check-prefix=OVERRIDE-SYNTAX
// OVERRIDE-SYNTAX: error: qnt-gptq: override 'indef-act-order' must be REGEX:key=value[:key=value...]

func.func @missing(%x: tensor<3x4xf32>, %acc: tensor<3x2xf32>) -> tensor<3x2xf32> {
  // expected-error@+1 {{qnt-gptq: no statistics for layer 'missing.linear0' in}}
  %w = arith.constant dense<[[-1.0, 0.3, 0.5, 2.0], [0.7, 1.0, -2.0, 3.0]]> : tensor<2x4xf32>
  %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                      affine_map<(m, n, k) -> (n, k)>,
                                      affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %w : tensor<3x4xf32>, tensor<2x4xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  return %y : tensor<3x2xf32>
}

// -----

func.func @mismatch(%x: tensor<3x4xf32>, %acc: tensor<3x2xf32>) -> tensor<3x2xf32> {
  // expected-error@+1 {{qnt-gptq: the statistics of layer 'mismatch.linear0' have 3 input channels; its weight has K = 4}}
  %w = arith.constant dense<[[-1.0, 0.3, 0.5, 2.0], [0.7, 1.0, -2.0, 3.0]]> : tensor<2x4xf32>
  %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                      affine_map<(m, n, k) -> (n, k)>,
                                      affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %w : tensor<3x4xf32>, tensor<2x4xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  return %y : tensor<3x2xf32>
}

// -----

func.func @negative(%x: tensor<3x4xf32>, %acc: tensor<3x2xf32>) -> tensor<3x2xf32> {
  %w = arith.constant dense<[[-1.0, 0.3, 0.5, 2.0], [0.7, 1.0, -2.0, 3.0]]> : tensor<2x4xf32>
  // expected-error@+1 {{'linalg.matmul' op qnt-gptq cannot quantize 'negative.linear0': Hessian diagonal H[1][1] = -1.000000 is negative: not a sum X^T X of layer inputs}}
  %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                      affine_map<(m, n, k) -> (n, k)>,
                                      affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %w : tensor<3x4xf32>, tensor<2x4xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  return %y : tensor<3x2xf32>
}

// -----

func.func @indefinite(%x: tensor<3x4xf32>, %acc: tensor<3x2xf32>) -> tensor<3x2xf32> {
  // expected-remark@+3 {{qnt-gptq: 'indefinite.linear0': Hessian not positive definite with damping 0.010000; retried with 0.100000}}
  // expected-remark@+2 {{retried with 1.000000}}
  // expected-remark@+1 {{retried with 10.000000}}
  %w = arith.constant dense<[[-1.0, 0.3, 0.5, 2.0], [0.7, 1.0, -2.0, 3.0]]> : tensor<2x4xf32>
  %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                      affine_map<(m, n, k) -> (n, k)>,
                                      affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %w : tensor<3x4xf32>, tensor<2x4xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  return %y : tensor<3x2xf32>
}
