// qnt-equalize: cross-layer equalization of the exactly rescalable pairs,
// up -> down through a gated product and v -> o through attention with two
// query heads sharing one KV head; checked by running each function before
// and after (verify=1).
// RUN: quant-opt %s -split-input-file --qnt-equalize="verify=1" | FileCheck %s
// RUN: quant-opt %s -split-input-file --qnt-equalize="alpha=1 verify=1" | FileCheck %s --check-prefix=ALPHA1

// r1 = max|up rows| = [4, 1], r2 = max|down columns| = [1, 4]:
// t = sqrt(r1 / r2) = [2, 0.5]. Up's rows / t, down's columns * t; both
// ranges end at [2, 2].
// CHECK-LABEL: func.func @gated
// CHECK-DAG: arith.constant dense<{{\[}}[2.000000e+00, 0.000000e+00], [2.000000e+00, -2.000000e+00]]> : tensor<2x2xf32>
// CHECK-DAG: arith.constant dense<2.000000e+00> : tensor<1x2xf32>
// CHECK-NOT: qnt.smooth
// CHECK: return
// alpha = 1 moves the whole range into down: t = r1, up's rows end at 1.
// ALPHA1-LABEL: func.func @gated
// ALPHA1-DAG: arith.constant dense<{{\[}}[1.000000e+00, 0.000000e+00], [1.000000e+00, -1.000000e+00]]> : tensor<2x2xf32>
// ALPHA1-DAG: arith.constant dense<4.000000e+00> : tensor<1x2xf32>
func.func @gated(%x: tensor<3x2xf32>) -> tensor<3x1xf32> {
  %wgate = arith.constant dense<[[1.0, 0.5], [0.25, 1.0]]> : tensor<2x2xf32>
  %wup = arith.constant dense<[[4.0, 0.0], [1.0, -1.0]]> : tensor<2x2xf32>
  %wdown = arith.constant dense<[[1.0, 4.0]]> : tensor<1x2xf32>
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<3x2xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%e : tensor<3x2xf32>) -> tensor<3x2xf32>
  %gate = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                         affine_map<(m, n, k) -> (n, k)>,
                                         affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %wgate : tensor<3x2xf32>, tensor<2x2xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  %up = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                       affine_map<(m, n, k) -> (n, k)>,
                                       affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %wup : tensor<3x2xf32>, tensor<2x2xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  %h = linalg.generic {indexing_maps = [affine_map<(m, n) -> (m, n)>, affine_map<(m, n) -> (m, n)>,
                                        affine_map<(m, n) -> (m, n)>],
                       iterator_types = ["parallel", "parallel"]}
      ins(%gate, %up : tensor<3x2xf32>, tensor<3x2xf32>) outs(%e : tensor<3x2xf32>) {
  ^bb0(%p: f32, %q: f32, %o: f32):
    %n = arith.negf %p : f32
    %ex = math.exp %n : f32
    %one = arith.constant 1.0 : f32
    %d = arith.addf %one, %ex : f32
    %sig = arith.divf %p, %d : f32
    %r = arith.mulf %sig, %q : f32
    linalg.yield %r : f32
  } -> tensor<3x2xf32>
  %e1 = tensor.empty() : tensor<3x1xf32>
  %acc1 = linalg.fill ins(%zero : f32) outs(%e1 : tensor<3x1xf32>) -> tensor<3x1xf32>
  %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                      affine_map<(m, n, k) -> (n, k)>,
                                      affine_map<(m, n, k) -> (m, n)>]
      ins(%h, %wdown : tensor<3x2xf32>, tensor<1x2xf32>) outs(%acc1 : tensor<3x1xf32>) -> tensor<3x1xf32>
  return %y : tensor<3x1xf32>
}

// -----

// v = x Wv^T holds one KV head of two channels; out[s, r, d] = sum_t
// p[s, r, t] v[t, d] for two query heads r; o reads out flattened (channel
// r * 2 + d reads value row d). r1 = [4, 1]; r2 over the columns reading
// each row = [max(1, 0.5), max(4, 2)] = [1, 4]: t = [2, 0.5] for value rows,
// [2, 0.5, 2, 0.5] for o's columns.
// CHECK-LABEL: func.func @attention
// CHECK-DAG: arith.constant dense<{{\[}}[2.000000e+00, 0.000000e+00], [2.000000e+00, 2.000000e+00]]> : tensor<2x2xf32>
// CHECK-DAG: arith.constant dense<{{\[}}[2.000000e+00, 2.000000e+00, 1.000000e+00, 1.000000e+00]]> : tensor<1x4xf32>
// CHECK-NOT: qnt.smooth
// CHECK: return
func.func @attention(%x: tensor<3x2xf32>, %p: tensor<3x2x3xf32>) -> tensor<3x1xf32> {
  %wv = arith.constant dense<[[4.0, 0.0], [1.0, 1.0]]> : tensor<2x2xf32>
  %wo = arith.constant dense<[[1.0, 4.0, 0.5, 2.0]]> : tensor<1x4xf32>
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<3x2xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%e : tensor<3x2xf32>) -> tensor<3x2xf32>
  %v = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                      affine_map<(m, n, k) -> (n, k)>,
                                      affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %wv : tensor<3x2xf32>, tensor<2x2xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  %vh = tensor.expand_shape %v [[0], [1, 2]] output_shape [3, 1, 2] : tensor<3x2xf32> into tensor<3x1x2xf32>
  %e4 = tensor.empty() : tensor<3x1x2x2xf32>
  %acc4 = linalg.fill ins(%zero : f32) outs(%e4 : tensor<3x1x2x2xf32>) -> tensor<3x1x2x2xf32>
  // (s, g, r, d, t): p[s, r, t] * v[t, g, d]
  %out = linalg.generic {indexing_maps = [affine_map<(s, g, r, d, t) -> (s, r, t)>,
                                          affine_map<(s, g, r, d, t) -> (t, g, d)>,
                                          affine_map<(s, g, r, d, t) -> (s, g, r, d)>],
                         iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%p, %vh : tensor<3x2x3xf32>, tensor<3x1x2xf32>) outs(%acc4 : tensor<3x1x2x2xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %m = arith.mulf %a, %b : f32
    %s = arith.addf %o, %m : f32
    linalg.yield %s : f32
  } -> tensor<3x1x2x2xf32>
  %flat = tensor.collapse_shape %out [[0], [1, 2, 3]] : tensor<3x1x2x2xf32> into tensor<3x4xf32>
  %e1 = tensor.empty() : tensor<3x1xf32>
  %acc1 = linalg.fill ins(%zero : f32) outs(%e1 : tensor<3x1xf32>) -> tensor<3x1xf32>
  %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                      affine_map<(m, n, k) -> (n, k)>,
                                      affine_map<(m, n, k) -> (m, n)>]
      ins(%flat, %wo : tensor<3x4xf32>, tensor<1x4xf32>) outs(%acc1 : tensor<3x1xf32>) -> tensor<3x1xf32>
  return %y : tensor<3x1xf32>
}

// -----

// A consumer whose producer is not a linear layer is left alone.
// CHECK-LABEL: func.func @unpaired
// CHECK: arith.constant dense<{{\[}}[1.000000e+00, 4.000000e+00]]> : tensor<1x2xf32>
// CHECK-NOT: qnt.smooth
func.func @unpaired(%x: tensor<3x2xf32>) -> tensor<3x1xf32> {
  %w = arith.constant dense<[[1.0, 4.0]]> : tensor<1x2xf32>
  %zero = arith.constant 0.0 : f32
  %e1 = tensor.empty() : tensor<3x1xf32>
  %acc1 = linalg.fill ins(%zero : f32) outs(%e1 : tensor<3x1xf32>) -> tensor<3x1xf32>
  %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                      affine_map<(m, n, k) -> (n, k)>,
                                      affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %w : tensor<3x2xf32>, tensor<1x2xf32>) outs(%acc1 : tensor<3x1xf32>) -> tensor<3x1xf32>
  return %y : tensor<3x1xf32>
}
