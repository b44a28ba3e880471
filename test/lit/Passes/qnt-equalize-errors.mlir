// qnt-equalize refuses bad options and a parameter it cannot rewrite.
// RUN: quant-opt %s -split-input-file --qnt-equalize -verify-diagnostics -o /dev/null
// RUN: not quant-opt %s --qnt-equalize="alpha=1.5" -o /dev/null 2>&1 | FileCheck %s --check-prefix=ALPHA
// ALPHA: error: qnt-equalize: alpha must be in [0, 1], got 1.5
// RUN: not quant-opt %s --qnt-equalize="layers=no_such_layer" -o /dev/null 2>&1 | FileCheck %s --check-prefix=LAYERS
// LAYERS: error: qnt-equalize: no layer matching 'no_such_layer' reads a float linear layer's output through an exactly rescalable map
// RUN: not quant-opt %s --qnt-equalize="layers=(" -o /dev/null 2>&1 | FileCheck %s --check-prefix=REGEX
// REGEX: error: qnt-equalize: invalid layers pattern '(':

// A parameter weight is rewritten into a new file, which needs output=.
func.func @param_consumer(%x: tensor<3x2xf32>) -> tensor<3x1xf32> {
  %wup = arith.constant dense<[[4.0, 0.0], [1.0, -1.0]]> : tensor<2x2xf32>
  // expected-error @+1 {{qnt-equalize: rescaling parameter 'down.weight' writes a new parameter; give output=<file.safetensors>}}
  %wdown = qnt.param "down.weight" : tensor<1x2xf32>
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<3x2xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%e : tensor<3x2xf32>) -> tensor<3x2xf32>
  %up = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                       affine_map<(m, n, k) -> (n, k)>,
                                       affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %wup : tensor<3x2xf32>, tensor<2x2xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  %e1 = tensor.empty() : tensor<3x1xf32>
  %acc1 = linalg.fill ins(%zero : f32) outs(%e1 : tensor<3x1xf32>) -> tensor<3x1xf32>
  %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                      affine_map<(m, n, k) -> (n, k)>,
                                      affine_map<(m, n, k) -> (m, n)>]
      ins(%up, %wdown : tensor<3x2xf32>, tensor<1x2xf32>) outs(%acc1 : tensor<3x1xf32>) -> tensor<3x1xf32>
  return %y : tensor<3x1xf32>
}
