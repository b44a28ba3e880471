// RUN: quant-opt %s -split-input-file -verify-diagnostics --qnt-differentiate=function=f

// A math op without an adjoint rule, on a differentiated value.
#id = affine_map<(i) -> (i)>
func.func @f(%x: tensor<4xf32>) -> tensor<4xf32> {
  %e = tensor.empty() : tensor<4xf32>
  %r = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel"]}
      ins(%x : tensor<4xf32>) outs(%e : tensor<4xf32>) {
  ^bb0(%a: f32, %o: f32):
    // expected-error @below {{'math.atan' op has no adjoint rule}}
    %v = math.atan %a : f32
    linalg.yield %v : f32
  } -> tensor<4xf32>
  return %r : tensor<4xf32>
}

// -----

// A differentiated tensor read inside a body other than by tensor.extract.
#id = affine_map<(i) -> (i)>
func.func @f(%x: tensor<4xf32>) -> tensor<4xf32> {
  %e = tensor.empty() : tensor<4xf32>
  // expected-error @below {{uses a differentiated tensor inside its body other than by tensor.extract}}
  %r = linalg.generic {indexing_maps = [#id], iterator_types = ["parallel"]}
      outs(%e : tensor<4xf32>) {
  ^bb0(%o: f32):
    %i = linalg.index 0 : index
    %zero = arith.constant 0.0 : f32
    %t = tensor.insert %zero into %x[%i] : tensor<4xf32>
    %v = tensor.extract %t[%i] : tensor<4xf32>
    linalg.yield %v : f32
  } -> tensor<4xf32>
  return %r : tensor<4xf32>
}

// -----

// A product reduction.
#in = affine_map<(i) -> (i)>
#out = affine_map<(i) -> ()>
func.func @f(%x: tensor<4xf32>) -> tensor<f32> {
  %one = arith.constant 1.0 : f32
  %e = tensor.empty() : tensor<f32>
  %init = linalg.fill ins(%one : f32) outs(%e : tensor<f32>) -> tensor<f32>
  // expected-error @below {{reduces output #0 with a combiner other than a sum, a maximum or a minimum}}
  %r = linalg.generic {indexing_maps = [#in, #out], iterator_types = ["reduction"]}
      ins(%x : tensor<4xf32>) outs(%init : tensor<f32>) {
  ^bb0(%a: f32, %acc: f32):
    %v = arith.mulf %acc, %a : f32
    linalg.yield %v : f32
  } -> tensor<f32>
  return %r : tensor<f32>
}

// -----

// An indexing map that is not a projected permutation.
#sum = affine_map<(i, j) -> (i + j)>
#out = affine_map<(i, j) -> (i, j)>
func.func @f(%x: tensor<6xf32>) -> tensor<3x4xf32> {
  %e = tensor.empty() : tensor<3x4xf32>
  // expected-error @below {{is not a projected permutation}}
  %r = linalg.generic {indexing_maps = [#sum, #out], iterator_types = ["parallel", "parallel"]}
      ins(%x : tensor<6xf32>) outs(%e : tensor<3x4xf32>) {
  ^bb0(%a: f32, %o: f32):
    linalg.yield %a : f32
  } -> tensor<3x4xf32>
  return %r : tensor<3x4xf32>
}

// -----

// An op of another dialect on a differentiated value.
func.func @f(%x: tensor<4xf32>) -> tensor<8xf32> {
  // expected-error @below {{'tensor.concat' op has no adjoint rule}}
  %r = tensor.concat dim(0) %x, %x : (tensor<4xf32>, tensor<4xf32>) -> tensor<8xf32>
  return %r : tensor<8xf32>
}

// -----

// A result that cannot take a cotangent.
// expected-error @below {{has result #1 of type 'tensor<4xi32>', which cannot take a cotangent}}
func.func @f(%x: tensor<4xf32>, %i: tensor<4xi32>) -> (tensor<4xf32>, tensor<4xi32>) {
  return %x, %i : tensor<4xf32>, tensor<4xi32>
}

// -----

// The adjoint's name is taken.
// expected-error @below {{cannot be differentiated into 'f_adjoint': a symbol of that name exists}}
func.func @f(%x: tensor<4xf32>) -> tensor<4xf32> {
  return %x : tensor<4xf32>
}
func.func @f_adjoint() {
  return
}

// -----

// A reduced value that reads another output's accumulator.
#in = affine_map<(i) -> (i)>
#out = affine_map<(i) -> ()>
func.func @f(%x: tensor<4xf32>) -> (tensor<f32>, tensor<f32>) {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<f32>
  %init = linalg.fill ins(%zero : f32) outs(%e : tensor<f32>) -> tensor<f32>
  // expected-error @below {{reduces into output #1 a value that reads an accumulator}}
  %r:2 = linalg.generic {indexing_maps = [#in, #out, #out], iterator_types = ["reduction"]}
      ins(%x : tensor<4xf32>) outs(%init, %init : tensor<f32>, tensor<f32>) {
  ^bb0(%a: f32, %acc0: f32, %acc1: f32):
    %s0 = arith.addf %acc0, %a : f32
    %s1 = arith.addf %acc1, %s0 : f32
    linalg.yield %s0, %s1 : f32, f32
  } -> (tensor<f32>, tensor<f32>)
  return %r#0, %r#1 : tensor<f32>, tensor<f32>
}
