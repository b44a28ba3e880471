// bias-correction (every weight method): E[x] (W - Q)^T added after the
// quantized matmul, from the statistics' input mean.
// RUN: rm -rf %t && mkdir -p %t
// RUN: %python %S/Inputs/write_stats.py %t/s.safetensors "bc.linear0=1,0,0,0,0,1,0,0,0,0,1,0,0,0,0,1#1,2,3,4"
// RUN: quant-opt %s --qnt-rtn="bits=2 symmetric=1 granularity=per-channel bias-correction=1 stats=%t/s.safetensors" | FileCheck %s
// Without the mean (a statistics file of an older quant-calibrate):
// RUN: %python %S/Inputs/write_stats.py %t/nomean.safetensors "bc.linear0=1,0,0,0,0,1,0,0,0,0,1,0,0,0,0,1"
// RUN: not quant-opt %s --qnt-rtn="bits=2 symmetric=1 granularity=per-channel bias-correction=1 stats=%t/nomean.safetensors" -o /dev/null 2>&1 | FileCheck %s --check-prefix=NOMEAN
// NOMEAN: error: qnt-rtn: bias-correction needs the mean input of layer 'bc.linear0'; the statistics file '{{.*}}nomean.safetensors' has none (write it again with quant-calibrate)
// RTN is data-free, but with bias correction it needs statistics:
// RUN: not quant-opt %s --qnt-rtn="bits=2 bias-correction=1" -o /dev/null 2>&1 | FileCheck %s --check-prefix=NOSTATS
// NOSTATS: error: qnt-rtn: no statistics for layer 'bc.linear0'

// 2-bit symmetric per channel: scale = absmax, codes in [-2, 1], half to
// even. Row 0 [1, 0.5, -1, 0.25] -> [1, 0, -1, 0], error [0, 0.5, 0, 0.25];
// row 1 [2, 2, -2, 1] -> [2, 2, -2, 0], error [0, 0, 0, 1]. With E[x] =
// [1, 2, 3, 4]: bias = [0.5 * 2 + 0.25 * 4, 1 * 4] = [2, 4].
// CHECK-LABEL: func.func @bc
// CHECK: %[[Y:.*]] = linalg.matmul
// CHECK: %[[BIAS:.*]] = arith.constant dense<[2.000000e+00, 4.000000e+00]> : tensor<2xf32>
// CHECK: %[[SUM:.*]] = linalg.generic {{.*}} ins(%[[Y]], %[[BIAS]] : tensor<3x2xf32>, tensor<2xf32>)
// CHECK: arith.addf
// CHECK: return %[[SUM]]
func.func @bc(%x: tensor<3x4xf32>) -> tensor<3x2xf32> {
  %w = arith.constant dense<[[1.0, 0.5, -1.0, 0.25], [2.0, 2.0, -2.0, 1.0]]> : tensor<2x4xf32>
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<3x2xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%e : tensor<3x2xf32>) -> tensor<3x2xf32>
  %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                      affine_map<(m, n, k) -> (n, k)>,
                                      affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %w : tensor<3x4xf32>, tensor<2x4xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  return %y : tensor<3x2xf32>
}
