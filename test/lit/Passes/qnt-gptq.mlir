// qnt-gptq on constant weights with Hessians from a statistics file.
// With a diagonal Hessian the inverse-Hessian factor is diagonal, no error
// is compensated, and GPTQ equals RTN: the codes below are RTN's, computed
// by hand as in qnt-rtn.mlir. With a correlated Hessian the later columns
// move (compensation), and act-order with groups gathers the input.

// RUN: rm -rf %t && mkdir -p %t
// RUN: %python %S/Inputs/write_stats.py %t/diag.safetensors "diagonal.linear0=1,0,0,0,0,1,0,0,0,0,1,0,0,0,0,1"
// RUN: quant-opt %s --qnt-gptq="stats=%t/diag.safetensors bits=4 granularity=per-channel layers=diagonal" | FileCheck %s --check-prefix=DIAG
// RUN: %python %S/Inputs/write_stats.py %t/corr.safetensors "actorder.linear0=1,0.5,0.2,0.1,0.5,4,0.3,0.2,0.2,0.3,2,0.4,0.1,0.2,0.4,3"
// RUN: quant-opt %s --qnt-gptq="stats=%t/corr.safetensors bits=4 group-size=2 act-order=1 layers=actorder" | FileCheck %s --check-prefix=ACT
// RUN: quant-opt %s --qnt-gptq="stats=%t/corr.safetensors bits=4 group-size=2 act-order=1 static-groups=1 layers=actorder" | FileCheck %s --check-prefix=STATIC
// Per-layer overrides: the matching layer gets 8 bits per channel; the
// later override wins over the earlier one for the same key.
// RUN: quant-opt %s --qnt-gptq="stats=%t/corr.safetensors bits=4 group-size=2 layers=actorder overrides=act:bits=3,actorder:bits=8:granularity=per-channel" | FileCheck %s --check-prefix=OVERRIDE
// OVERRIDE-LABEL: func.func @actorder
// OVERRIDE: qnt.dequant #qnt.uniform<bits = 8, mode = asymmetric>({{.*}}) : (tensor<2x4xi8>, tensor<2x1xf32>, tensor<2x1xi8>)
// The report names each layer, its encoding, bits per weight and error.
// RUN: quant-opt %s --qnt-gptq="stats=%t/corr.safetensors bits=4 group-size=2 layers=actorder report=%t/report.json" -o /dev/null
// RUN: FileCheck %s --check-prefix=REPORT --input-file=%t/report.json

// Row 0 = -1 0 0.5 2: min -1, max 2,
// s = 3/15 = 0.2, z = 5, u = -5+5, 0+5, 2.5->2+5, 10+5 = 0 5 7 15 -> 0x50 0xF7.
// Row 1 = 0 1 2 3: s = 0.2, z = 0, u = 0 5 10 15 -> 0x50 0xFA.
// DIAG-LABEL: func.func @diagonal
// DIAG-DAG: arith.constant dense<{{\[}}[80, -9], [80, -6]]> : tensor<2x2xi8>
// DIAG-DAG: arith.constant dense<2.000000e-01> : tensor<2x1xf32>
// DIAG-DAG: arith.constant dense<{{\[}}[5], [0]]> : tensor<2x1xi8>
// DIAG: qnt.dequant #qnt.uniform<bits = 4, mode = asymmetric>
func.func @diagonal(%x: tensor<3x4xf32>) -> tensor<3x2xf32> {
  %w = arith.constant dense<[[-1.0, 0.0, 0.5, 2.0], [0.0, 1.0, 2.0, 3.0]]> : tensor<2x4xf32>
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<3x2xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%e : tensor<3x2xf32>) -> tensor<3x2xf32>
  %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                      affine_map<(m, n, k) -> (n, k)>,
                                      affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %w : tensor<3x4xf32>, tensor<2x4xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  return %y : tensor<3x2xf32>
}

// Hessian diagonal 1 4 2 3: act-order processes columns 1 3 2 0; groups of
// 2 are formed in that order, so the storage holds W[:, (1 3 2 0)] and the
// input is gathered with the same permutation before the matmul. With
// static groups the scales come from natural-order groups: no gather.
// ACT-LABEL: func.func @actorder
// ACT: %[[W:.*]] = qnt.dequant #qnt.uniform<bits = 4, mode = asymmetric, granularity = per_group, group_size = 2>
// ACT: %[[PERM:.*]] = arith.constant dense<[1, 3, 2, 0]> : tensor<4xi32>
// ACT: %[[GATHERED:.*]] = linalg.generic {{.*}} ins(%[[PERM]] : tensor<4xi32>)
// ACT: tensor.extract
// ACT: linalg.matmul {{.*}} ins(%[[GATHERED]], %[[W]] :
// STATIC-LABEL: func.func @actorder
// STATIC-NOT: linalg.generic
// STATIC: qnt.dequant #qnt.uniform<bits = 4, mode = asymmetric, granularity = per_group, group_size = 2>
// REPORT: "bits_per_weight": 24.0
// REPORT: "encoding": "int4 asym g2"
// REPORT: "error_on_inputs": true
// REPORT: "method": "gptq"
// REPORT: "name": "actorder.linear0"
func.func @actorder(%x: tensor<3x4xf32>) -> tensor<3x2xf32> {
  %w = arith.constant dense<[[-1.0, 0.3, 0.5, 2.0], [0.7, 1.0, -2.0, 3.0]]> : tensor<2x4xf32>
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<3x2xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%e : tensor<3x2xf32>) -> tensor<3x2xf32>
  %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                      affine_map<(m, n, k) -> (n, k)>,
                                      affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %w : tensor<3x4xf32>, tensor<2x4xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  return %y : tensor<3x2xf32>
}
