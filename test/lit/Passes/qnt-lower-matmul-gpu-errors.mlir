// Invalid qnt-lower-matmul-gpu options are located errors, not crashes.
// RUN: not quant-opt %s --qnt-lower-matmul-gpu="strategy=fastest" 2>&1 | FileCheck %s --check-prefix=STRATEGY
// RUN: not quant-opt %s --qnt-lower-matmul-gpu="gemm-tile-k=24" 2>&1 | FileCheck %s --check-prefix=TILE
// RUN: not quant-opt %s --qnt-lower-matmul-gpu="gemv-elements-per-lane=12" 2>&1 | FileCheck %s --check-prefix=LANE
// RUN: not quant-opt %s --qnt-gpu-pipeline="chips=sm_80 matmul=gemv-warps=0" 2>&1 | FileCheck %s --check-prefix=WARPS

// STRATEGY: error: qnt-lower-matmul-gpu: unknown strategy 'fastest' (expected auto, gemv or gemm)
// TILE: error: qnt-lower-matmul-gpu: gemm-tile-k must be a multiple of 16 in [16, 64]
// LANE: error: qnt-lower-matmul-gpu: gemv-elements-per-lane must be a multiple of 8 in [8, 64]
// WARPS: error: qnt-lower-matmul-gpu: gemv-warps must be in [1, 32]
func.func @f(%x: tensor<1x64xf32>, %c: tensor<8x64xi8>, %s: tensor<8x1xf32>) -> tensor<1x8xf32> {
  %y = qnt.matmul %x, #qnt.uniform<bits = 8>(%c, %s) : (tensor<1x64xf32>, tensor<8x64xi8>, tensor<8x1xf32>) -> tensor<1x8xf32>
  return %y : tensor<1x8xf32>
}
