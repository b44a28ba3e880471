// qnt-gpu-map-loops refuses what its mapping cannot express, with a
// located error: a parallel loop that reduces across its iterations.
// RUN: quant-opt %s --split-input-file --verify-diagnostics --pass-pipeline='builtin.module(func.func(qnt-gpu-map-loops))'

func.func @sum(%a: memref<?xf32>, %n: index) -> f32 {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %zero = arith.constant 0.0 : f32
  // expected-error @below {{qnt-gpu-map-loops: a parallel loop with reductions cannot be mapped}}
  %s = scf.parallel (%i) = (%c0) to (%n) step (%c1) init (%zero) -> f32 {
    %v = memref.load %a[%i] : memref<?xf32>
    scf.reduce(%v : f32) {
    ^bb0(%x: f32, %y: f32):
      %r = arith.addf %x, %y : f32
      scf.reduce.return %r : f32
    }
  }
  return %s : f32
}
