// qnt-fold-smooth: x / s folded into the producer of x, exactly, and
// checked by running the functions before and after (verify=1).
// RUN: quant-opt %s -split-input-file --qnt-fold-smooth="verify=1" | FileCheck %s
// A difference of float rounding is still a difference at tolerance 0
// (s = 3 is not a power of two): verify reports it on the function.
// RUN: not quant-opt %s -split-input-file --qnt-fold-smooth="verify=1 tolerance=0" -o /dev/null 2>&1 | FileCheck %s --check-prefix=STRICT
// STRICT: error: qnt-fold-smooth: the rewrite is not exact: result 0 of @gated differs by {{.*}} (relative), above the tolerance 0.000000e+00

// A gated unit: silu(a) * (x Wup^T); the scale goes into Wup's rows (the
// second row is divided by 3, the first by 0.5).
// CHECK-LABEL: func.func @gated
// CHECK-NOT: qnt.smooth
// CHECK: arith.constant dense<{{\[}}[2.000000e+00, 4.000000e+00], [1.000000e+00, 2.000000e+00]]> : tensor<2x2xf32>
// CHECK-NOT: qnt.smooth
// CHECK: return
func.func @gated(%x: tensor<3x2xf32>, %a: tensor<3x2xf32>, %wdown: tensor<2x2xf32>) -> tensor<3x2xf32> {
  %wup = arith.constant dense<[[1.0, 2.0], [3.0, 6.0]]> : tensor<2x2xf32>
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<3x2xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%e : tensor<3x2xf32>) -> tensor<3x2xf32>
  %up = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                       affine_map<(m, n, k) -> (n, k)>,
                                       affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %wup : tensor<3x2xf32>, tensor<2x2xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  %h = linalg.generic {indexing_maps = [affine_map<(m, n) -> (m, n)>, affine_map<(m, n) -> (m, n)>,
                                        affine_map<(m, n) -> (m, n)>],
                       iterator_types = ["parallel", "parallel"]}
      ins(%a, %up : tensor<3x2xf32>, tensor<3x2xf32>) outs(%e : tensor<3x2xf32>) {
  ^bb0(%p: f32, %q: f32, %o: f32):
    %n = arith.negf %p : f32
    %ex = math.exp %n : f32
    %one = arith.constant 1.0 : f32
    %d = arith.addf %one, %ex : f32
    %sig = arith.divf %p, %d : f32
    %r = arith.mulf %sig, %q : f32
    linalg.yield %r : f32
  } -> tensor<3x2xf32>
  %s = arith.constant dense<[0.5, 3.0]> : tensor<2xf32>
  %hs = qnt.smooth %h, %s : tensor<3x2xf32>, tensor<2xf32>
  %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                      affine_map<(m, n, k) -> (n, k)>,
                                      affine_map<(m, n, k) -> (m, n)>]
      ins(%hs, %wdown : tensor<3x2xf32>, tensor<2x2xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  return %y : tensor<3x2xf32>
}

// -----

// A quantized producer: its per-row scales are divided (0.5 / 2, 1 / 4).
// CHECK-LABEL: func.func @quantized
// CHECK: %[[SCALES:.*]] = arith.constant dense<2.500000e-01> : tensor<2x1xf32>
// CHECK: qnt.dequant #qnt.uniform<bits = 8>(%{{.*}}, %[[SCALES]])
// CHECK-NOT: qnt.smooth
func.func @quantized(%x: tensor<3x2xf32>) -> tensor<3x2xf32> {
  %codes = arith.constant dense<[[1, 2], [3, 4]]> : tensor<2x2xi8>
  %scales = arith.constant dense<[[0.5], [1.0]]> : tensor<2x1xf32>
  %w = qnt.dequant #qnt.uniform<bits = 8>(%codes, %scales) : (tensor<2x2xi8>, tensor<2x1xf32>) -> tensor<2x2xf32>
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<3x2xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%e : tensor<3x2xf32>) -> tensor<3x2xf32>
  %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                      affine_map<(m, n, k) -> (n, k)>,
                                      affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %w : tensor<3x2xf32>, tensor<2x2xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  %s = arith.constant dense<[2.0, 4.0]> : tensor<2xf32>
  %ys = qnt.smooth %y, %s : tensor<3x2xf32>, tensor<2xf32>
  return %ys : tensor<3x2xf32>
}
