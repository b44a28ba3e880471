// qnt-bind-params: every qnt.param in a function becomes a trailing argument
// of the same type carrying {qnt.param = "<name>"}; uses of one name share
// one argument. Functions with callers cannot change signature.
// RUN: quant-opt %s -split-input-file --qnt-bind-params -verify-diagnostics | FileCheck %s

// Two names, one used twice: two new arguments after the existing one, in
// order of first use.
// CHECK-LABEL: func.func @two_params
// CHECK-SAME: (%[[X:[^:]*]]: tensor<3x8xf32>, %[[W:[^:]*]]: tensor<2x8xf32> {qnt.param = "layers.0.wq"}, %[[B:[^:]*]]: tensor<8xf16> {qnt.param = "layers.0.bias"})
// CHECK-SAME: -> (tensor<2x8xf32>, tensor<2x8xf32>, tensor<8xf16>, tensor<3x8xf32>)
// CHECK-NOT: qnt.param
// CHECK: return %[[W]], %[[W]], %[[B]], %[[X]]
func.func @two_params(%x: tensor<3x8xf32>) -> (tensor<2x8xf32>, tensor<2x8xf32>, tensor<8xf16>, tensor<3x8xf32>) {
  %a = qnt.param "layers.0.wq" : tensor<2x8xf32>
  %b = qnt.param "layers.0.bias" : tensor<8xf16>
  %c = qnt.param "layers.0.wq" : tensor<2x8xf32>
  return %a, %c, %b, %x : tensor<2x8xf32>, tensor<2x8xf32>, tensor<8xf16>, tensor<3x8xf32>
}

// -----

// Each function gets its own arguments, even for a shared name; a function
// without parameters and an external declaration are left alone.
// CHECK-LABEL: func.func @first
// CHECK-SAME: (%[[W:[^:]*]]: tensor<2x8xi8> {qnt.param = "w.codes"}) -> tensor<2x8xi8>
// CHECK: return %[[W]]
// CHECK-LABEL: func.func @second
// CHECK-SAME: (%[[W:[^:]*]]: tensor<2x8xi8> {qnt.param = "w.codes"}) -> tensor<2x8xi8>
// CHECK: return %[[W]]
// CHECK-LABEL: func.func @no_params
// CHECK-SAME: (%{{[^:]*}}: tensor<4xf32>) -> tensor<4xf32>
// CHECK: func.func private @external(tensor<4xf32>)
func.func @first() -> tensor<2x8xi8> {
  %w = qnt.param "w.codes" : tensor<2x8xi8>
  return %w : tensor<2x8xi8>
}
func.func @second() -> tensor<2x8xi8> {
  %w = qnt.param "w.codes" : tensor<2x8xi8>
  return %w : tensor<2x8xi8>
}
func.func @no_params(%x: tensor<4xf32>) -> tensor<4xf32> {
  return %x : tensor<4xf32>
}
func.func private @external(tensor<4xf32>)

// -----

// A parameter used inside a nested region binds to an argument of the
// enclosing function.
// CHECK-LABEL: func.func @nested_region
// CHECK-SAME: (%[[P:[^:]*]]: tensor<2x8xf32> {qnt.param = "nested"})
// CHECK: scf.execute_region
// CHECK-NEXT: scf.yield %[[P]]
func.func @nested_region() -> tensor<2x8xf32> {
  %r = scf.execute_region -> tensor<2x8xf32> {
    %a = qnt.param "nested" : tensor<2x8xf32>
    scf.yield %a : tensor<2x8xf32>
  }
  return %r : tensor<2x8xf32>
}

// -----

// A function with a caller cannot take new arguments.
func.func @callee() -> tensor<2x8xf32> {
  // expected-error@+1 {{'qnt.param' op cannot become an argument of 'callee', which has callers}}
  %a = qnt.param "w" : tensor<2x8xf32>
  return %a : tensor<2x8xf32>
}
func.func @caller() -> tensor<2x8xf32> {
  %a = call @callee() : () -> tensor<2x8xf32>
  return %a : tensor<2x8xf32>
}

// -----

// One name used with two types.
func.func @two_types() -> (tensor<2x8xf32>, tensor<8x2xf32>) {
  %a = qnt.param "w" : tensor<2x8xf32>
  // expected-error@+1 {{'qnt.param' op parameter 'w' is used as both 'tensor<2x8xf32>' and 'tensor<8x2xf32>'}}
  %b = qnt.param "w" : tensor<8x2xf32>
  return %a, %b : tensor<2x8xf32>, tensor<8x2xf32>
}
