// RUN: quant-opt %s --qnt-rtn="granularity=per-channel" -split-input-file -verify-diagnostics
// RUN: not quant-opt %s --qnt-rtn="bits=9" 2>&1 | FileCheck %s --check-prefix=BITS

// A NaN weight cannot be quantized: a located error, not an abort.
func.func @nan_weight(%x: tensor<1x4xf32>) -> tensor<1x2xf32> {
  %w = arith.constant dense<[[1.0, 0x7FC00000, 3.0, -4.0], [1.0, 2.0, 3.0, 4.0]]> : tensor<2x4xf32>
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<1x2xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%e : tensor<1x2xf32>) -> tensor<1x2xf32>
  // expected-error@+1 {{qnt-rtn cannot quantize 'nan_weight.linear0': weight W[0][1] = nan is not finite}}
  %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>, affine_map<(m, n, k) -> (n, k)>, affine_map<(m, n, k) -> (m, n)>]
       ins(%x, %w : tensor<1x4xf32>, tensor<2x4xf32>) outs(%acc : tensor<1x2xf32>) -> tensor<1x2xf32>
  return %y : tensor<1x2xf32>
}

// Option values print as numbers.
// BITS: bits must be in 2..8, got 9
