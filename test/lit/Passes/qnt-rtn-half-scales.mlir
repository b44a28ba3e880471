// qnt-rtn with scale-type=f16: the scales are stored in half precision and
// the codes are chosen for the stored value, not the f32 one.
// RUN: quant-opt %s --qnt-rtn="bits=4 symmetric=1 granularity=per-channel scale-type=f16" | FileCheck %s
// An override gives one layer half scales:
// RUN: quant-opt %s --qnt-rtn="bits=4 symmetric=1 granularity=per-channel overrides=.*:scale-type=f16" | FileCheck %s
// RUN: not quant-opt %s --qnt-rtn="overrides=.*:scale-type=bf8" -o /dev/null 2>&1 | FileCheck %s --check-prefix=BAD
// BAD: error: qnt-rtn: override '.*:scale-type=bf8': bad value 'bf8' for scale-type

// absmax 0.7: s = 0.1, stored as the half 0x2E66 = 0.0999755859375. Then
// 0.7 / s = 7.0017 -> 7, 0.25 / s = 2.5006 -> 3 (with the f32 scale, 2.5
// would round to even, 2), -0.1 / s -> -1, 0 -> 0; u = q + 8 = 15 11 7 8,
// packed LSB first: 0xBF 0x87 = -65 -121.
// CHECK-LABEL: func.func @half
// CHECK-DAG: %[[CODES:.*]] = arith.constant dense<{{\[}}[-65, -121]]> : tensor<1x2xi8>
// CHECK-DAG: %[[SCALE:.*]] = arith.constant dense<9.997550e-02> : tensor<1x1xf16>
// CHECK: qnt.dequant #qnt.uniform<bits = 4, scale_type = f16>(%[[CODES]], %[[SCALE]]) : (tensor<1x2xi8>, tensor<1x1xf16>) -> tensor<1x4xf32>
func.func @half(%x: tensor<3x4xf32>) -> tensor<3x1xf32> {
  %w = arith.constant dense<[[0.7, 0.25, -0.1, 0.0]]> : tensor<1x4xf32>
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<3x1xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%e : tensor<3x1xf32>) -> tensor<3x1xf32>
  %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                      affine_map<(m, n, k) -> (n, k)>,
                                      affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %w : tensor<3x4xf32>, tensor<1x4xf32>) outs(%acc : tensor<3x1xf32>) -> tensor<3x1xf32>
  return %y : tensor<3x1xf32>
}
