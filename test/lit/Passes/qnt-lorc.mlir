// LoRC (lorc-rank, an option of every weight method): the error W - Q(W)
// of each quantized weight is approximated by U V^T from its SVD and added
// after the matmul as qnt.lowrank_add acc, x, U, V (two skinny products;
// the correction is never materialized as a weight).
//
// At full rank (r = min(N, K) = 2) with f32 factors the correction is the
// whole error: the layer computes x W^T again, up to float rounding, even
// from a 2-bit weight. Checked by running both versions on the same input.
// RUN: rm -rf %t && mkdir -p %t
// RUN: quant-opt %s --qnt-rtn="bits=2 granularity=per-channel lorc-rank=2 lorc-factors=f32" | FileCheck %s
// RUN: quant-run %s --seed=3 --output=%t/float.safetensors
// RUN: quant-opt %s --qnt-rtn="bits=2 granularity=per-channel lorc-rank=2 lorc-factors=f32" -o %t/lorc.mlir
// RUN: quant-run %t/lorc.mlir --seed=3 --expect=%t/float.safetensors --rtol=1e-5
// Without the correction the 2-bit weight is far off.
// RUN: quant-opt %s --qnt-rtn="bits=2 granularity=per-channel" -o %t/rtn.mlir
// RUN: not quant-run %t/rtn.mlir --seed=3 --expect=%t/float.safetensors --rtol=1e-2 2>&1 | FileCheck %s --check-prefix=FAR
// FAR: result0: max abs diff {{.*}} MISMATCH
//
// f16 factors are widened where they are used; int8 factors are a
// qnt.dequant of per-row symmetric 8-bit codes. Bits per weight count the
// factors: rank 1 of a 2x4 weight in int8 adds (2 + 4) * 8 bits of codes
// and (2 + 4) * 32 of scales over 8 weights: 30 bits, on top of the 12 of
// the 2-bit weight with an f32 scale and an 8-bit zero per row of 4.
// RUN: quant-opt %s --qnt-rtn="bits=2 granularity=per-channel lorc-rank=1 lorc-factors=f16" | FileCheck %s --check-prefix=F16
// RUN: quant-opt %s --qnt-rtn="bits=2 granularity=per-channel lorc-rank=1 lorc-factors=f16" | quant-run - --seed=3 | FileCheck %s --check-prefix=RUNS
// RUN: quant-opt %s --qnt-rtn="bits=2 granularity=per-channel lorc-rank=1 lorc-factors=int8" | quant-run - --seed=3 | FileCheck %s --check-prefix=RUNS
// RUN: quant-opt %s --qnt-rtn="bits=2 granularity=per-channel lorc-rank=1 lorc-factors=int8 report=%t/report.json" | FileCheck %s --check-prefix=INT8
// RUN: FileCheck %s --check-prefix=REPORT --input-file=%t/report.json
// RUN: not quant-opt %s --qnt-rtn="lorc-rank=-1" 2>&1 | FileCheck %s --check-prefix=NEGATIVE
// RUN: not quant-opt %s --qnt-rtn="lorc-rank=1 lorc-factors=f8" 2>&1 | FileCheck %s --check-prefix=FORMAT
// NEGATIVE: error: qnt-rtn: lorc-rank must be >= 0, got -1
// RUNS: ran @layer: 1 inputs, 0 parameters, 1 results
// FORMAT: for the --lorc-factors option: Cannot find option named 'f8'!

// CHECK-LABEL: func.func @layer
// CHECK-SAME: (%[[X:.*]]: tensor<3x4xf32>)
// CHECK: %[[Y:.*]] = linalg.matmul {{.*}} ins(%[[X]], %{{.*}} : tensor<3x4xf32>, tensor<2x4xf32>)
// CHECK: %[[U:.*]] = arith.constant {{.*}} : tensor<2x2xf32>
// CHECK: %[[V:.*]] = arith.constant {{.*}} : tensor<4x2xf32>
// CHECK: %[[C:.*]] = qnt.lowrank_add %[[Y]], %[[X]], %[[U]], %[[V]] : tensor<3x2xf32>, tensor<3x4xf32>, tensor<2x2xf32>, tensor<4x2xf32>
// CHECK: return %[[C]]
// F16: arith.constant {{.*}} : tensor<2x1xf16>
// F16: linalg.generic {{.*}} ins(%{{.*}} : tensor<2x1xf16>) outs(%{{.*}} : tensor<2x1xf32>)
// F16: arith.extf {{.*}} : f16 to f32
// F16: qnt.lowrank_add
// INT8: qnt.dequant #qnt.uniform<bits = 8>({{.*}}) : (tensor<2x1xi8>, tensor<2x1xf32>) -> tensor<2x1xf32>
// INT8: qnt.dequant #qnt.uniform<bits = 8>({{.*}}) : (tensor<4x1xi8>, tensor<4x1xf32>) -> tensor<4x1xf32>
// INT8: qnt.lowrank_add
// REPORT: "bits_per_weight": 42.0
// REPORT: "encoding": "int2 asym per-channel + lorc r1 int8"
func.func @layer(%x: tensor<3x4xf32>) -> tensor<3x2xf32> {
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
