// qnt-awq on constant weights with statistics from a file (the group's own
// output error through the Hessian: no model runs here), and qnt-fold-smooth
// after it.
//
// @normed: two layers share the output of a normalization with a constant
// gain. Input channel 0 is large (mean |x| 4, H00 = 1600) and channel 3
// small (0.25): with scale-grid=2, alpha = 0.5 wins over 0 (no scaling):
// s = (4, 1, 1, 0.25)^0.5 / sqrt(2 * 0.5) = (2, 1, 1, 0.5).
// Row 0 of the first weight, scaled: 0.2 2 -1.5 1.5; 3-bit asymmetric per
// channel: s = 3.5/7 = 0.5, z = 3, codes 3 7 0 6 (packed 3 bits each, LSB
// first: 0b00111011 = 59, 0b1100 = 12). The second layer is not clipped
// (no-clip); the first one's row 1 is (scale 0.5536 = range 3.875 = 2.375
// + 1.5: absmax 2.5 clipped to 0.95 * 2.5).
// RUN: rm -rf %t && mkdir -p %t
// RUN: %python %S/Inputs/write_stats.py %t/s.safetensors "normed.linear0=1600,0,0,0,0,100,0,0,0,0,100,0,0,0,0,6.25@4,1,1,0.25;normed.linear1=1600,0,0,0,0,100,0,0,0,0,100,0,0,0,0,6.25@4,1,1,0.25;argument.linear0=1600,0,0,0,0,100,0,0,0,0,100,0,0,0,0,6.25@4,1,1,0.25"
// RUN: quant-opt %s --qnt-awq="stats=%t/s.safetensors bits=3 granularity=per-channel scale-grid=2 no-clip=linear1" 2>&1 | FileCheck %s
// RUN: quant-opt %s --qnt-awq="stats=%t/s.safetensors bits=3 granularity=per-channel scale-grid=2 unfoldable-scales=keep" 2>/dev/null | FileCheck %s --check-prefix=KEEP
// Folded: the gain becomes gain / s, no smooth remains, and verify runs
// both versions on random inputs.
// RUN: quant-opt %s --pass-pipeline="builtin.module(qnt-awq{stats=%t/s.safetensors bits=3 granularity=per-channel scale-grid=2}, qnt-fold-smooth{verify=1})" 2>/dev/null | FileCheck %s --check-prefix=FOLD
// The option values are checked.
// RUN: not quant-opt %s --qnt-awq="stats=%t/s.safetensors scale-grid=0" 2>&1 | FileCheck %s --check-prefix=GRID
// GRID: error: qnt-awq: scale-grid must be in [1, 1000], got 0
// RUN: not quant-opt %s --qnt-awq="stats=%t/s.safetensors unfoldable-scales=maybe" 2>&1 | FileCheck %s --check-prefix=ENUM
// ENUM: for the --unfoldable-scales option: Cannot find option named 'maybe'!
// RUN: not quant-opt %s --qnt-awq="stats=%t/s.safetensors no-clip=(" 2>&1 | FileCheck %s --check-prefix=REGEX
// REGEX: error: qnt-awq: invalid no-clip pattern '('

// CHECK: remark: qnt-awq: 'normed.linear0': alpha 0.50
// CHECK-LABEL: func.func @normed
// CHECK: %[[N:.*]] = linalg.generic
// CHECK: %[[S:.*]] = arith.constant dense<[2.000000e+00, 1.000000e+00, 1.000000e+00, 5.000000e-01]> : tensor<4xf32>
// CHECK: %[[X:.*]] = qnt.smooth %[[N]], %[[S]] : tensor<3x4xf32>, tensor<4xf32>
// CHECK: arith.constant dense<{{\[}}[59, 12], [-22, 1]]> : tensor<2x2xi8>
// CHECK: arith.constant dense<{{\[}}[5.000000e-01], [0.553571403]]> : tensor<2x1xf32>
// CHECK: linalg.matmul {{.*}} ins(%[[X]], %{{.*}} :
// CHECK: linalg.matmul {{.*}} ins(%[[X]], %{{.*}} :
// CHECK-NOT: qnt.smooth
// CHECK-LABEL: func.func @argument
// CHECK-NOT: qnt.smooth
// CHECK: return
func.func @normed(%x: tensor<3x4xf32>, %r: tensor<3xf32>) -> (tensor<3x2xf32>, tensor<3x2xf32>) {
  %g = arith.constant dense<[1.0, 0.5, 2.0, 1.0]> : tensor<4xf32>
  %e0 = tensor.empty() : tensor<3x4xf32>
  %n = linalg.generic {indexing_maps = [affine_map<(m, k) -> (m, k)>, affine_map<(m, k) -> (m)>,
                                        affine_map<(m, k) -> (k)>, affine_map<(m, k) -> (m, k)>],
                       iterator_types = ["parallel", "parallel"]}
      ins(%x, %r, %g : tensor<3x4xf32>, tensor<3xf32>, tensor<4xf32>) outs(%e0 : tensor<3x4xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32, %o: f32):
    %p = arith.mulf %b, %a : f32
    %q = arith.mulf %c, %p : f32
    linalg.yield %q : f32
  } -> tensor<3x4xf32>
  %wq = arith.constant dense<[[0.1, 2.0, -1.5, 3.0], [-0.2, 1.0, 2.5, -3.0]]> : tensor<2x4xf32>
  %wk = arith.constant dense<[[0.05, -1.0, 0.5, 2.0], [0.3, 1.5, -2.5, 1.0]]> : tensor<2x4xf32>
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<3x2xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%e : tensor<3x2xf32>) -> tensor<3x2xf32>
  %yq = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                       affine_map<(m, n, k) -> (n, k)>,
                                       affine_map<(m, n, k) -> (m, n)>]
      ins(%n, %wq : tensor<3x4xf32>, tensor<2x4xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  %yk = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                       affine_map<(m, n, k) -> (n, k)>,
                                       affine_map<(m, n, k) -> (m, n)>]
      ins(%n, %wk : tensor<3x4xf32>, tensor<2x4xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  return %yq, %yk : tensor<3x2xf32>, tensor<3x2xf32>
}

// A function argument cannot absorb a scale: clipping only by default;
// with unfoldable-scales=keep, the smooth stays.
// KEEP-LABEL: func.func @argument
// KEEP: qnt.smooth %arg0
// FOLD-LABEL: func.func @normed
// FOLD-NOT: qnt.smooth
// FOLD: arith.constant dense<[5.000000e-01, 5.000000e-01, 2.000000e+00, 2.000000e+00]> : tensor<4xf32>
// FOLD: linalg.generic
// FOLD-NOT: qnt.smooth
// FOLD-LABEL: func.func @argument
func.func @argument(%x: tensor<3x4xf32>) -> tensor<3x2xf32> {
  %w = arith.constant dense<[[0.1, 2.0, -1.5, 3.0], [-0.2, 1.0, 2.5, -3.0]]> : tensor<2x4xf32>
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<3x2xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%e : tensor<3x2xf32>) -> tensor<3x2xf32>
  %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                      affine_map<(m, n, k) -> (n, k)>,
                                      affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %w : tensor<3x4xf32>, tensor<2x4xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  return %y : tensor<3x2xf32>
}
