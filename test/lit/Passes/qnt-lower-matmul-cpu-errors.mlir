// qnt-lower-matmul-cpu errors: an out-of-range kernel option is reported at
// the function being lowered, and the pass fails (non-zero exit).
// RUN: quant-opt %s -split-input-file -verify-diagnostics --pass-pipeline="builtin.module(func.func(qnt-lower-matmul-cpu{unroll=0}))"
// RUN: quant-opt %s -split-input-file -verify-diagnostics --pass-pipeline="builtin.module(func.func(qnt-lower-matmul-cpu{col-tile=0}))"
// RUN: quant-opt %s -split-input-file -verify-diagnostics --pass-pipeline="builtin.module(func.func(qnt-lower-matmul-cpu{threads=-1}))"
// RUN: not quant-opt %s --pass-pipeline="builtin.module(func.func(qnt-lower-matmul-cpu{vector-width=-1}))" > /dev/null 2>&1

// expected-error @below {{qnt-lower-matmul-cpu: vector-width, threads and lut-max-rows must be >= 0, prefetch >= -1, unroll, row-tile and col-tile >= 1}}
func.func @linear(%x: tensor<1x8xf32>, %codes: tensor<4x4xi8>, %scales: tensor<4x1xf32>) -> tensor<1x4xf32> {
  %y = qnt.matmul %x, #qnt.uniform<bits = 4>(%codes, %scales) : (tensor<1x8xf32>, tensor<4x4xi8>, tensor<4x1xf32>) -> tensor<1x4xf32>
  return %y : tensor<1x4xf32>
}
