// qnt-smooth: SmoothQuant's scale s_j = max|X_j|^alpha / max_i |W_ij|^(1-alpha)
// on a group of layers sharing a normalized input, then round-to-nearest;
// qnt-fold-smooth folds the scale into the gain.
//
// The statistics give max|X_j| = 1 for every channel, so with alpha = 0.5
// s_j = 1 / sqrt(max |W_:,j|), the maximum over both layers' columns:
// (0.3, 2, 2.5, 3) -> s = (1.8257, 0.7071, 0.6325, 0.5774) (0.3 rounded to
// f32 first).
// RUN: rm -rf %t && mkdir -p %t
// RUN: %python %S/Inputs/write_stats.py %t/s.safetensors "normed.linear0=1,0,0,0,0,1,0,0,0,0,1,0,0,0,0,1;normed.linear1=1,0,0,0,0,1,0,0,0,0,1,0,0,0,0,1"
// RUN: quant-opt %s --qnt-smooth="stats=%t/s.safetensors alpha=0.5 bits=8 granularity=per-channel" | FileCheck %s
// RUN: quant-opt %s --pass-pipeline="builtin.module(qnt-smooth{stats=%t/s.safetensors alpha=0.5 bits=8 granularity=per-channel}, qnt-fold-smooth{verify=1})" | FileCheck %s --check-prefix=FOLD
// RUN: not quant-opt %s --qnt-smooth="stats=%t/s.safetensors alpha=1.5" 2>&1 | FileCheck %s --check-prefix=ALPHA
// ALPHA: error: qnt-smooth: alpha must be in [0, 1], got 1.5

// CHECK-LABEL: func.func @normed
// CHECK: %[[S:.*]] = arith.constant dense<[1.82574177, 0.707106769, 0.632455527, 0.577350259]> : tensor<4xf32>
// CHECK: %[[X:.*]] = qnt.smooth %{{.*}}, %[[S]]
// CHECK: qnt.dequant #qnt.uniform<bits = 8, mode = asymmetric>
// CHECK: linalg.matmul {{.*}} ins(%[[X]],
// CHECK: qnt.dequant #qnt.uniform<bits = 8, mode = asymmetric>
// CHECK: linalg.matmul {{.*}} ins(%[[X]],
// The gain (1, 0.5, 2, 1) divided by s.
// FOLD-LABEL: func.func @normed
// FOLD-NOT: qnt.smooth
// FOLD: arith.constant dense<[0.547722578, 0.707106769, 3.1622777, 1.7320509]> : tensor<4xf32>
// FOLD-NOT: qnt.smooth
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
