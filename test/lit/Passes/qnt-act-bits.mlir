// act-bits (every weight method): the input of each quantized matmul is
// fake-quantized, with a scale per token (default) or per tensor, computed
// at run time; act-bits=0 leaves it float.
// RUN: quant-opt %s --qnt-rtn="bits=8 act-bits=8" | FileCheck %s --check-prefix=TOKEN
// RUN: quant-opt %s --qnt-rtn="bits=8 act-bits=4 act-granularity=per-tensor" | FileCheck %s --check-prefix=TENSOR
// RUN: quant-opt %s --qnt-rtn="bits=8" | FileCheck %s --check-prefix=FLOAT
// RUN: not quant-opt %s --qnt-rtn="act-bits=1" -o /dev/null 2>&1 | FileCheck %s --check-prefix=BAD
// BAD: error: qnt-rtn: act-bits must be 0 or in 2..16, got 1

// TOKEN-LABEL: func.func @linear
// TOKEN-SAME: (%[[X:.*]]: tensor<3x4xf32>)
// TOKEN: %[[XQ:.*]] = qnt.fake_quant %[[X]] {bits = 8 : i64, granularity = #qnt<act_granularity per_token>} : tensor<3x4xf32>
// TOKEN: linalg.matmul {{.*}} ins(%[[XQ]], %{{.*}} : tensor<3x4xf32>, tensor<2x4xf32>)
// TENSOR: qnt.fake_quant %{{.*}} {bits = 4 : i64, granularity = #qnt<act_granularity per_tensor>}
// FLOAT-NOT: qnt.fake_quant
func.func @linear(%x: tensor<3x4xf32>) -> tensor<3x2xf32> {
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
