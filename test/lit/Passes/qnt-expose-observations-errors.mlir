// qnt-expose-observations and qnt-insert-observers errors.

// RUN: quant-opt %s -split-input-file -verify-diagnostics --qnt-expose-observations
// RUN: not quant-opt %s -split-input-file --pass-pipeline='builtin.module(func.func(qnt-insert-observers{stats=max}))' 2>&1 | FileCheck %s --check-prefix=STAT
// STAT: error: qnt-insert-observers: unknown statistic 'max'; expected absmax, mean_abs or hessian

// A function with callers cannot gain results.
func.func @callee(%x: tensor<2x4xf32>) -> tensor<2x4xf32> {
  // expected-error@+1 {{'qnt.observe' op cannot become a result of 'callee', which has callers}}
  %y = qnt.observe %x as "x" stats ["absmax"] : tensor<2x4xf32>
  return %y : tensor<2x4xf32>
}
func.func @caller(%x: tensor<2x4xf32>) -> tensor<2x4xf32> {
  %y = call @callee(%x) : (tensor<2x4xf32>) -> tensor<2x4xf32>
  return %y : tensor<2x4xf32>
}

// -----

// The observed value must dominate the one return: single-block functions.
func.func @branches(%x: tensor<2x4xf32>, %c: i1) -> tensor<2x4xf32> {
  // expected-error@+1 {{'qnt.observe' op can only be exposed from a single-block function}}
  %y = qnt.observe %x as "x" stats ["absmax"] : tensor<2x4xf32>
  cf.cond_br %c, ^a, ^b
^a:
  return %y : tensor<2x4xf32>
^b:
  return %x : tensor<2x4xf32>
}
