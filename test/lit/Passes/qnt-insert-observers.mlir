// qnt-insert-observers: one qnt.observe per linear layer input, named after
// the layer's weight; qnt-expose-observations: observed values become extra
// results listed in qnt.observed.

// RUN: quant-opt %s -split-input-file --pass-pipeline='builtin.module(func.func(qnt-insert-observers))' | FileCheck %s
// RUN: quant-opt %s -split-input-file --pass-pipeline='builtin.module(func.func(qnt-insert-observers{stats=absmax}),qnt-expose-observations)' | FileCheck %s --check-prefix=EXPOSE

#nk = affine_map<(m, n, k) -> (m, k)>
#wk = affine_map<(m, n, k) -> (n, k)>
#mn = affine_map<(m, n, k) -> (m, n)>

// Two layers sharing one input, each observed under its weight's name (the
// name location first, else the qnt.param name); a constant weight gets a
// positional name.
// CHECK-LABEL: func.func @shared
// CHECK: %[[A:.*]] = qnt.observe %arg0 as "wq" stats ["absmax", "mean_abs", "hessian"] : tensor<?x4xf32>
// CHECK: linalg.matmul {{.*}}ins(%[[A]],
// CHECK: %[[B:.*]] = qnt.observe %arg0 as "layer.wk" stats ["absmax", "mean_abs", "hessian"]
// CHECK: linalg.matmul {{.*}}ins(%[[B]],
// CHECK: %[[C:.*]] = qnt.observe %arg0 as "shared.linear0"
// CHECK: linalg.matmul {{.*}}ins(%[[C]],

// Exposed: one extra result per distinct observed value, all names listed.
// EXPOSE-LABEL: func.func @shared(%arg0: tensor<?x4xf32>) -> (tensor<?x2xf32>, tensor<?x2xf32>, tensor<?x2xf32>, tensor<?x4xf32>)
// EXPOSE-SAME: qnt.observed = [{names = ["wq", "layer.wk", "shared.linear0"], stats = ["absmax"]}]
// EXPOSE-NOT: qnt.observe
// EXPOSE: return %{{.*}}, %{{.*}}, %{{.*}}, %arg0 :
func.func @shared(%x: tensor<?x4xf32>) -> (tensor<?x2xf32>, tensor<?x2xf32>, tensor<?x2xf32>) {
  %c0 = arith.constant 0 : index
  %rows = tensor.dim %x, %c0 : tensor<?x4xf32>
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty(%rows) : tensor<?x2xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%e : tensor<?x2xf32>) -> tensor<?x2xf32>
  %wq = qnt.param "wq" : tensor<2x4xf32>
  %q = linalg.matmul indexing_maps = [#nk, #wk, #mn] ins(%x, %wq : tensor<?x4xf32>, tensor<2x4xf32>) outs(%acc : tensor<?x2xf32>) -> tensor<?x2xf32>
  %wk = qnt.param "wk_storage" : tensor<2x4xf32> loc("layer.wk")
  %k = linalg.matmul indexing_maps = [#nk, #wk, #mn] ins(%x, %wk : tensor<?x4xf32>, tensor<2x4xf32>) outs(%acc : tensor<?x2xf32>) -> tensor<?x2xf32>
  %wc = arith.constant dense<1.0> : tensor<2x4xf32>
  %c = linalg.matmul indexing_maps = [#nk, #wk, #mn] ins(%x, %wc : tensor<?x4xf32>, tensor<2x4xf32>) outs(%acc : tensor<?x2xf32>) -> tensor<?x2xf32>
  return %q, %k, %c : tensor<?x2xf32>, tensor<?x2xf32>, tensor<?x2xf32>
}

// -----

// A plain (not transpose-B) matmul is not a linear layer here; an input
// that is already observed is not observed twice.
// CHECK-LABEL: func.func @skipped
// CHECK-NOT: qnt.observe
// CHECK: linalg.matmul ins(%arg0, %arg1
// CHECK: qnt.observe %arg0 as "mine"
// CHECK-NOT: qnt.observe
// CHECK: return
func.func @skipped(%x: tensor<2x4xf32>, %w: tensor<4x2xf32>, %acc: tensor<2x2xf32>) -> (tensor<2x2xf32>, tensor<2x2xf32>) {
  %y = linalg.matmul ins(%x, %w : tensor<2x4xf32>, tensor<4x2xf32>) outs(%acc : tensor<2x2xf32>) -> tensor<2x2xf32>
  %x1 = qnt.observe %x as "mine" stats ["absmax"] : tensor<2x4xf32>
  %wt = qnt.param "wt" : tensor<2x4xf32>
  %z = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>, affine_map<(m, n, k) -> (n, k)>, affine_map<(m, n, k) -> (m, n)>] ins(%x1, %wt : tensor<2x4xf32>, tensor<2x4xf32>) outs(%acc : tensor<2x2xf32>) -> tensor<2x2xf32>
  return %y, %z : tensor<2x2xf32>, tensor<2x2xf32>
}
