// RUN: quant-opt %s --pass-pipeline='builtin.module(qnt-differentiate{function=mul},qnt-differentiate{function=rowsum wrt=0,1 adjoint-name=rowsum_grad},qnt-differentiate{function=linear wrt=0},qnt-differentiate{function=reverse})' | FileCheck %s

// CHECK-DAG: #[[ROWS:.*]] = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-DAG: #[[ROW:.*]] = affine_map<(d0, d1) -> (d0)>

// Elementwise product: each operand's gradient is a generic over the same
// loops, the cotangent times the other operand, accumulated into zeros.
// The forward's result is not needed, so no primal remains.
// CHECK-LABEL: func.func @mul_adjoint(
// CHECK-SAME: %[[X:[a-z0-9]+]]: tensor<4xf32>, %[[Y:[a-z0-9]+]]: tensor<4xf32>, %[[DR:[a-z0-9]+]]: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>)
// CHECK-NOT: arith.mulf
// CHECK: %[[Z0:.*]] = linalg.fill
// CHECK: %[[GX:.*]] = linalg.generic {{.*}} ins(%[[X]], %[[Y]], %[[DR]] : {{.*}}) outs(%[[Z0]] : tensor<4xf32>)
// CHECK-NEXT: ^bb0(%{{.*}}: f32, %[[B:.*]]: f32, %[[G:.*]]: f32, %[[ACC:.*]]: f32):
// CHECK-NEXT: %[[P:.*]] = arith.mulf %[[G]], %[[B]] : f32
// CHECK-NEXT: %[[S:.*]] = arith.addf %[[ACC]], %[[P]] : f32
// CHECK-NEXT: linalg.yield %[[S]] : f32
// CHECK: %[[GY:.*]] = linalg.generic {{.*}} ins(%[[X]], %[[Y]], %[[DR]] : {{.*}})
// CHECK-NEXT: ^bb0(%[[A2:.*]]: f32, %{{.*}}: f32, %[[G2:.*]]: f32, %{{.*}}: f32):
// CHECK-NEXT: arith.mulf %[[G2]], %[[A2]] : f32
// CHECK: return %[[GX]], %[[GY]]
#id = affine_map<(i) -> (i)>
func.func @mul(%x: tensor<4xf32>, %y: tensor<4xf32>) -> tensor<4xf32> {
  %e = tensor.empty() : tensor<4xf32>
  %r = linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel"]}
      ins(%x, %y : tensor<4xf32>, tensor<4xf32>) outs(%e : tensor<4xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %m = arith.mulf %a, %b : f32
    linalg.yield %m : f32
  } -> tensor<4xf32>
  return %r : tensor<4xf32>
}

// A sum reduction over a dynamic number of rows: the reduced loop becomes
// parallel in the gradient, which broadcasts the row's cotangent (the map
// of the result) times exp; the init's gradient is the cotangent itself.
// CHECK-LABEL: func.func @rowsum_grad(
// CHECK-SAME: %[[X:[a-z0-9]+]]: tensor<?x8xf32>, %{{.*}}: tensor<?xf32>, %[[DR:[a-z0-9]+]]: tensor<?xf32>) -> (tensor<?x8xf32>, tensor<?xf32>)
// CHECK: %[[DIM:.*]] = tensor.dim %[[X]], %c0
// CHECK: tensor.empty(%[[DIM]]) : tensor<?x8xf32>
// CHECK: %[[GX:.*]] = linalg.generic {indexing_maps = [#[[ROWS]], #[[ROW]], #[[ROWS]]], iterator_types = ["parallel", "parallel"]} ins(%[[X]], %[[DR]] :
// CHECK: %[[E:.*]] = math.exp
// CHECK-NEXT: arith.mulf %{{.*}}, %[[E]]
// CHECK: return %[[GX]], %[[DR]] : tensor<?x8xf32>, tensor<?xf32>
#x2 = affine_map<(i, j) -> (i, j)>
#row = affine_map<(i, j) -> (i)>
func.func @rowsum(%x: tensor<?x8xf32>, %init: tensor<?xf32>) -> tensor<?xf32> {
  %r = linalg.generic {indexing_maps = [#x2, #row], iterator_types = ["parallel", "reduction"]}
      ins(%x : tensor<?x8xf32>) outs(%init : tensor<?xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %e = math.exp %a : f32
    %s = arith.addf %acc, %e : f32
    linalg.yield %s : f32
  } -> tensor<?xf32>
  return %r : tensor<?xf32>
}

// A quantized matmul with respect to its activation: dy times the weight
// dequantized from the same storage.
// CHECK-LABEL: func.func @linear_adjoint(
// CHECK-SAME: %{{.*}}: tensor<2x8xf32>, %[[C:[a-z0-9]+]]: tensor<3x4xi8>, %[[S:[a-z0-9]+]]: tensor<3x1xf32>, %[[DY:[a-z0-9]+]]: tensor<2x3xf32>) -> tensor<2x8xf32>
// CHECK-NOT: qnt.matmul
// CHECK: %[[W:.*]] = qnt.dequant #qnt.uniform<bits = 4>(%[[C]], %[[S]]) : (tensor<3x4xi8>, tensor<3x1xf32>) -> tensor<3x8xf32>
// CHECK: %[[DX:.*]] = linalg.matmul ins(%[[DY]], %[[W]] : tensor<2x3xf32>, tensor<3x8xf32>)
// CHECK: return %[[DX]]
func.func @linear(%x: tensor<2x8xf32>, %codes: tensor<3x4xi8>, %scales: tensor<3x1xf32>) -> tensor<2x3xf32> {
  %y = qnt.matmul %x, #qnt.uniform<bits = 4>(%codes, %scales) : (tensor<2x8xf32>, tensor<3x4xi8>, tensor<3x1xf32>) -> tensor<2x3xf32>
  return %y : tensor<2x3xf32>
}

// A gather (tensor.extract at a computed index, as RoPE reads the rotation
// partner): its adjoint is a scatter-add, a loop over the generic's
// iterations on tensors.
// CHECK-LABEL: func.func @reverse_adjoint(
// CHECK-SAME: %{{.*}}: tensor<4xf32>, %[[DR:[a-z0-9]+]]: tensor<4xf32>) -> tensor<4xf32>
// CHECK: %[[Z:.*]] = linalg.fill
// CHECK: %[[G:.*]] = scf.for %[[I:.*]] = %c0 to %c4 step %c1 iter_args(%[[ACC:.*]] = %[[Z]]) -> (tensor<4xf32>) {
// CHECK-NEXT: %[[SEED:.*]] = tensor.extract %[[DR]][%[[I]]] : tensor<4xf32>
// CHECK: %[[J:.*]] = arith.subi %c3, %[[I]] : index
// CHECK-NEXT: %[[OLD:.*]] = tensor.extract %[[ACC]][%[[J]]] : tensor<4xf32>
// CHECK-NEXT: %[[NEW:.*]] = arith.addf %[[OLD]], %[[SEED]] : f32
// CHECK-NEXT: %[[INS:.*]] = tensor.insert %[[NEW]] into %[[ACC]][%[[J]]] : tensor<4xf32>
// CHECK-NEXT: scf.yield %[[INS]]
// CHECK: return %[[G]]
func.func @reverse(%x: tensor<4xf32>) -> tensor<4xf32> {
  %e = tensor.empty() : tensor<4xf32>
  %r = linalg.generic {indexing_maps = [#id], iterator_types = ["parallel"]} outs(%e : tensor<4xf32>) {
  ^bb0(%o: f32):
    %i = linalg.index 0 : index
    %c3 = arith.constant 3 : index
    %j = arith.subi %c3, %i : index
    %v = tensor.extract %x[%j] : tensor<4xf32>
    linalg.yield %v : f32
  } -> tensor<4xf32>
  return %r : tensor<4xf32>
}
