// qnt-flexround, qnt-adaround and qnt-pdquant train on calibration data
// block by block: run as a pass on IR they say where they run.
// RUN: not quant-opt %s --qnt-flexround="bits=4 granularity=per-channel" 2>&1 | FileCheck %s
// RUN: not quant-opt %s --qnt-adaround="bits=4 granularity=per-channel" 2>&1 | FileCheck %s --check-prefix=ADA
// RUN: not quant-opt %s --qnt-pdquant="bits=4 granularity=per-channel act-bits=4" 2>&1 | FileCheck %s --check-prefix=PD

// CHECK: error: 'linalg.matmul' op qnt-flexround cannot quantize 'linear.w': it trains each transformer block on calibration data; run it block by block with quant-compile --recipe (docs/Recipes.md)
// ADA: qnt-adaround cannot quantize 'linear.w': it trains each transformer block
// PD: qnt-pdquant cannot quantize 'linear.w': it trains each transformer block
func.func @linear(%x: tensor<2x8xf32>) -> tensor<2x4xf32> {
  %w = arith.constant dense<0.5> : tensor<4x8xf32> loc("linear.w")
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<2x4xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%e : tensor<2x4xf32>) -> tensor<2x4xf32>
  %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>, affine_map<(m, n, k) -> (n, k)>, affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %w : tensor<2x8xf32>, tensor<4x8xf32>) outs(%acc : tensor<2x4xf32>) -> tensor<2x4xf32>
  return %y : tensor<2x4xf32>
}
