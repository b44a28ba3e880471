// qnt-ptq161 on a constant weight, absmax 1 5 2 3 from a statistics file:
// with ratio 0.25 the threshold is the second largest absmax (floor(0.25 *
// 4) = 1 from 0), so channels 1 and 3 are salient: channel map
// [-1, 0, -2, 1]. Salient part, 4-bit asymmetric with each row's min and max
// over the whole row:
//   row 0 = 1 2 -1 4: s = 5/15, z = 3, codes of 2 and 4: 9 15 -> 0xF9 (-7);
//   row 1 = 0.5 0 1.5 -3: s = 4.5/15 = 0.3, z = 10, codes of 0 and -3:
//   10 0 -> 0x0A.
// Rest (channels 0 and 2), mu and alpha the means of the non-zero entries
// and their magnitudes: row 0 = 1 -1: mu 0, alpha 1, bits (w >= mu) 1 0 ->
// 0b01; row 1 = 0.5 1.5: mu 1, alpha 1, bits 0 1 -> 0b10.

// RUN: rm -rf %t && mkdir -p %t
// RUN: %python %S/Inputs/write_stats.py %t/s.safetensors "mask.linear0=1,0,0,0,0,1,0,0,0,0,1,0,0,0,0,1!1,5,2,3"
// RUN: quant-opt %s --qnt-ptq161="stats=%t/s.safetensors ratio=0.25 epochs=0" | FileCheck %s
// RUN: not quant-opt %s --qnt-ptq161=epochs=0 2>&1 | FileCheck %s --check-prefix=NO-STATS
// NO-STATS: error: qnt-ptq161: no statistics for layer 'mask.linear0'
// RUN: quant-opt %s --qnt-ptq161=epochs=0 -verify-diagnostics -o /dev/null
// RUN: not quant-opt %s --qnt-ptq161="stats=%t/s.safetensors ratio=1 epochs=0" 2>&1 | FileCheck %s --check-prefix=RATIO
// RATIO: error: qnt-ptq161: ratio must be in [0, 1), got 1
// RUN: not quant-opt %s --qnt-ptq161="stats=%t/s.safetensors salient-bits=1 epochs=0" 2>&1 | FileCheck %s --check-prefix=BITS
// BITS: error: qnt-ptq161: salient-bits must be in 2..8, got 1
// Training needs the sequential driver's calibration streams:
// RUN: not quant-opt %s --qnt-ptq161="stats=%t/s.safetensors ratio=0.25" 2>&1 | FileCheck %s --check-prefix=TRAIN
// TRAIN: error: {{.*}}trains each transformer block on calibration data; run it block by block with quant-compile --recipe
// RUN: not quant-opt %s --qnt-ptq161="stats=%t/s.safetensors epochs=-1" 2>&1 | FileCheck %s --check-prefix=EPOCHS
// EPOCHS: error: qnt-ptq161: epochs must be >= 0, batch-sequences >= 1, lr and rescale-lr > 0

// CHECK-LABEL: func.func @mask
// CHECK-DAG: %[[MAP:.*]] = arith.constant dense<[-1, 0, -2, 1]> : tensor<4xi32>
// CHECK-DAG: %[[CODES:.*]] = arith.constant dense<{{\[}}[-7], [10]]> : tensor<2x1xi8>
// CHECK-DAG: %[[SCALES:.*]] = arith.constant dense<{{\[}}[0.333333343], [3.000000e-01]]> : tensor<2x1xf32>
// CHECK-DAG: %[[ZEROS:.*]] = arith.constant dense<{{\[}}[3], [10]]> : tensor<2x1xi8>
// CHECK-DAG: %[[SIGNS:.*]] = arith.constant dense<{{\[}}[1], [2]]> : tensor<2x1xi8>
// CHECK-DAG: %[[ALPHA:.*]] = arith.constant dense<1.000000e+00> : tensor<2x1xf32>
// CHECK-DAG: %[[MU:.*]] = arith.constant dense<{{\[}}[0.000000e+00], [1.000000e+00]]> : tensor<2x1xf32>
// CHECK: qnt.dequant #qnt.salient<num_salient = 2, salient = #qnt.uniform<bits = 4, mode = asymmetric>, rest = #qnt.binary<mode = asymmetric>>(%[[MAP]], %[[CODES]], %[[SCALES]], %[[ZEROS]], %[[SIGNS]], %[[ALPHA]], %[[MU]])
func.func @mask(%x: tensor<3x4xf32>) -> tensor<3x2xf32> {
  // expected-error@+1 {{qnt-ptq161: no statistics for layer 'mask.linear0'}}
  %w = arith.constant dense<[[1.0, 2.0, -1.0, 4.0], [0.5, 0.0, 1.5, -3.0]]> : tensor<2x4xf32>
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<3x2xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%e : tensor<3x2xf32>) -> tensor<3x2xf32>
  %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                      affine_map<(m, n, k) -> (n, k)>,
                                      affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %w : tensor<3x4xf32>, tensor<2x4xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  return %y : tensor<3x2xf32>
}
