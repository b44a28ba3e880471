// qnt-gpu-merge-kernel-modules refuses to merge modules compiled for
// different targets, with an error located at the module it cannot move.
// RUN: quant-opt %s --verify-diagnostics --pass-pipeline='builtin.module(qnt-gpu-merge-kernel-modules)'

module attributes {gpu.container_module} {
  gpu.module @a [#nvvm.target<chip = "sm_80">] {
    gpu.func @k() kernel { gpu.return }
  }
  // expected-error @below {{cannot merge gpu.module @b into @a: their targets differ}}
  gpu.module @b [#nvvm.target<chip = "sm_90">] {
    gpu.func @k() kernel { gpu.return }
  }
}
