// qnt-fold-smooth refuses what it cannot fold exactly, at the smooth, and
// writes nothing.
// RUN: quant-opt %s -split-input-file --qnt-fold-smooth -verify-diagnostics -o /dev/null
// RUN: not quant-opt %s --qnt-fold-smooth -o %t.mlir 2>/dev/null
// RUN: not test -e %t.mlir

func.func @argument(%x: tensor<3x2xf32>) -> tensor<3x2xf32> {
  %s = arith.constant dense<[2.0, 4.0]> : tensor<2xf32>
  // expected-error @+1 {{qnt-fold-smooth: cannot fold: the input is a function argument}}
  %xs = qnt.smooth %x, %s : tensor<3x2xf32>, tensor<2xf32>
  return %xs : tensor<3x2xf32>
}

// -----

// The value is also used unscaled: dividing the producer would change it.
func.func @other_user(%x: tensor<3x2xf32>, %w: tensor<2x2xf32>) -> (tensor<3x2xf32>, tensor<3x2xf32>) {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<3x2xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%e : tensor<3x2xf32>) -> tensor<3x2xf32>
  %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                      affine_map<(m, n, k) -> (n, k)>,
                                      affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %w : tensor<3x2xf32>, tensor<2x2xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  %s = arith.constant dense<[2.0, 4.0]> : tensor<2xf32>
  // expected-error @+1 {{qnt-fold-smooth: cannot fold: the smoothed value has a user that does not divide it by the same factors}}
  %ys = qnt.smooth %y, %s : tensor<3x2xf32>, tensor<2xf32>
  // expected-note @+1 {{this user}}
  return %ys, %y : tensor<3x2xf32>, tensor<3x2xf32>
}

// -----

// A weight that is a function argument has no data to rewrite.
func.func @argument_weight(%x: tensor<3x2xf32>, %w: tensor<2x2xf32>) -> tensor<3x2xf32> {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<3x2xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%e : tensor<3x2xf32>) -> tensor<3x2xf32>
  %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                      affine_map<(m, n, k) -> (n, k)>,
                                      affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %w : tensor<3x2xf32>, tensor<2x2xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  %s = arith.constant dense<[2.0, 4.0]> : tensor<2xf32>
  // expected-error @+1 {{qnt-fold-smooth: cannot fold: the producing matmul's weight is a function argument}}
  %ys = qnt.smooth %y, %s : tensor<3x2xf32>, tensor<2xf32>
  return %ys : tensor<3x2xf32>
}

// -----

// Factors computed at run time cannot be folded into data.
func.func @dynamic_factors(%x: tensor<3x2xf32>, %s: tensor<2xf32>) -> tensor<3x2xf32> {
  %w = arith.constant dense<[[1.0, 2.0], [3.0, 6.0]]> : tensor<2x2xf32>
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<3x2xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%e : tensor<3x2xf32>) -> tensor<3x2xf32>
  %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                      affine_map<(m, n, k) -> (n, k)>,
                                      affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %w : tensor<3x2xf32>, tensor<2x2xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  // expected-error @+1 {{qnt-fold-smooth: cannot fold: the smoothing factors are not a float constant}}
  %ys = qnt.smooth %y, %s : tensor<3x2xf32>, tensor<2xf32>
  return %ys : tensor<3x2xf32>
}

// -----

// A normalization whose gain is a parameter: the folded gain is a new
// parameter, which needs an output file.
func.func @param_gain(%x: tensor<3x2xf32>) -> tensor<3x2xf32> {
  // expected-error @+1 {{qnt-fold-smooth: rescaling parameter 'norm.weight' writes a new parameter; give output=<file.safetensors>}}
  %g = qnt.param "norm.weight" : tensor<2xf32>
  %e = tensor.empty() : tensor<3x2xf32>
  %n = linalg.generic {indexing_maps = [affine_map<(m, k) -> (m, k)>, affine_map<(m, k) -> (k)>,
                                        affine_map<(m, k) -> (m, k)>],
                       iterator_types = ["parallel", "parallel"]}
      ins(%x, %g : tensor<3x2xf32>, tensor<2xf32>) outs(%e : tensor<3x2xf32>) {
  ^bb0(%a: f32, %c: f32, %o: f32):
    %q = arith.mulf %c, %a : f32
    linalg.yield %q : f32
  } -> tensor<3x2xf32>
  %s = arith.constant dense<[2.0, 4.0]> : tensor<2xf32>
  %ns = qnt.smooth %n, %s : tensor<3x2xf32>, tensor<2xf32>
  return %ns : tensor<3x2xf32>
}

// -----

// Two query heads read one value row (grouped-query attention): they must
// be divided by the same factor, since the value projection's row is one.
func.func @attention_heads_differ(%x: tensor<3x2xf32>, %p: tensor<3x2x3xf32>) -> tensor<3x4xf32> {
  %wv = arith.constant dense<[[4.0, 0.0], [1.0, 1.0]]> : tensor<2x2xf32>
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<3x2xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%e : tensor<3x2xf32>) -> tensor<3x2xf32>
  %v = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                      affine_map<(m, n, k) -> (n, k)>,
                                      affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %wv : tensor<3x2xf32>, tensor<2x2xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  %vh = tensor.expand_shape %v [[0], [1, 2]] output_shape [3, 1, 2] : tensor<3x2xf32> into tensor<3x1x2xf32>
  %e4 = tensor.empty() : tensor<3x1x2x2xf32>
  %acc4 = linalg.fill ins(%zero : f32) outs(%e4 : tensor<3x1x2x2xf32>) -> tensor<3x1x2x2xf32>
  %out = linalg.generic {indexing_maps = [affine_map<(s, g, r, d, t) -> (s, r, t)>,
                                          affine_map<(s, g, r, d, t) -> (t, g, d)>,
                                          affine_map<(s, g, r, d, t) -> (s, g, r, d)>],
                         iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%p, %vh : tensor<3x2x3xf32>, tensor<3x1x2xf32>) outs(%acc4 : tensor<3x1x2x2xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %m = arith.mulf %a, %b : f32
    %s = arith.addf %o, %m : f32
    linalg.yield %s : f32
  } -> tensor<3x1x2x2xf32>
  %flat = tensor.collapse_shape %out [[0], [1, 2, 3]] : tensor<3x1x2x2xf32> into tensor<3x4xf32>
  %f = arith.constant dense<[2.0, 0.5, 1.0, 0.5]> : tensor<4xf32>
  // expected-error @+1 {{qnt-fold-smooth: cannot fold: channels 0 and 2 read the same value row 0 (attention heads sharing a KV head) but are divided by different factors}}
  %fs = qnt.smooth %flat, %f : tensor<3x4xf32>, tensor<4xf32>
  return %fs : tensor<3x4xf32>
}
