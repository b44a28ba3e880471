// qnt-lower-matmul-gpu: qnt.matmul becomes launches of fused dequantize
// kernels in gpu.module @qnt_kernels, chosen by M.
// RUN: quant-opt %s --split-input-file --qnt-lower-matmul-gpu | FileCheck %s
// RUN: quant-opt %s --split-input-file --qnt-lower-matmul-gpu="strategy=gemm gemm-tile-m=32" | FileCheck %s --check-prefix=GEMM

// A decode step (M = 1) gets one GEMV kernel with one row in flight: one
// warp per output column, 4 warps per block, 10 blocks for N = 40.
// CHECK-LABEL: func.func @decode
// CHECK-NOT: qnt.matmul
// CHECK: %[[X:.*]] = bufferization.to_buffer %{{.*}} read_only : tensor<1x96xf16> to memref<1x96xf16>
// CHECK: %[[OUT:.*]] = memref.alloc() : memref<1x40xf16>
// CHECK: gpu.launch_func @qnt_kernels::@matmul0_gemv_r1 blocks in (%{{.*}}, %{{.*}}, %{{.*}}) threads in (%{{.*}}, %{{.*}}, %{{.*}})
// CHECK: bufferization.to_tensor %[[OUT]] restrict writable : memref<1x40xf16> to tensor<1x40xf16>
// CHECK: gpu.module @qnt_kernels
// CHECK: gpu.func @matmul0_gemv_r1(%{{.*}}: memref<?x96xf16>, %{{.*}}: memref<40x48xi8>, %{{.*}}: memref<40x3xf32>, %{{.*}}: memref<40x3xi8>, %{{.*}}: memref<?x40xf16>) kernel attributes {known_block_size = array<i32: 32, 4, 1>}
// CHECK: gpu.shuffle xor
// CHECK-NOT: gpu.func

// GEMM-LABEL: func.func @decode
// GEMM: gpu.launch_func @qnt_kernels::@matmul0_gemm_mma
// GEMM: gpu.func @matmul0_gemm_mma({{.*}}) workgroup(%{{.*}} : memref<32x40xf16, #gpu.address_space<workgroup>>, %{{.*}} : memref<64x40xf16, #gpu.address_space<workgroup>>) kernel attributes {known_block_size = array<i32: 128, 1, 1>}
// GEMM: nvvm.mma.sync
func.func @decode(%x: tensor<1x96xf16>, %c: tensor<40x48xi8>, %s: tensor<40x3xf32>, %z: tensor<40x3xi8>) -> tensor<1x40xf16> {
  %y = qnt.matmul %x, #qnt.uniform<bits = 4, mode = asymmetric, granularity = per_group, group_size = 32>(%c, %s, %z) : (tensor<1x96xf16>, tensor<40x48xi8>, tensor<40x3xf32>, tensor<40x3xi8>) -> tensor<1x40xf16>
  return %y : tensor<1x40xf16>
}

// -----

// Static M = 3 uses the R = 4 variant; M = 64 the GEMM (f32: FMAs).
// CHECK-LABEL: func.func @static_rows
// CHECK: gpu.launch_func @qnt_kernels::@matmul0_gemv_r4
// CHECK: gpu.launch_func @qnt_kernels::@matmul1_gemm_fma
// CHECK: gpu.module @qnt_kernels
// CHECK-COUNT-2: gpu.func
// CHECK-NOT: gpu.func
func.func @static_rows(%x: tensor<3x64xf32>, %x2: tensor<64x64xf32>, %c: tensor<8x64xi8>, %s: tensor<8x1xf32>) -> (tensor<3x8xf32>, tensor<64x8xf32>) {
  %y = qnt.matmul %x, #qnt.uniform<bits = 8>(%c, %s) : (tensor<3x64xf32>, tensor<8x64xi8>, tensor<8x1xf32>) -> tensor<3x8xf32>
  %y2 = qnt.matmul %x2, #qnt.uniform<bits = 8>(%c, %s) : (tensor<64x64xf32>, tensor<8x64xi8>, tensor<8x1xf32>) -> tensor<64x8xf32>
  return %y, %y2 : tensor<3x8xf32>, tensor<64x8xf32>
}

// -----

// Dynamic M: chosen at run time, smallest GEMV variant first; nothing is
// launched for M = 0.
// CHECK-LABEL: func.func @dynamic
// CHECK: %[[M:.*]] = memref.dim
// CHECK: %[[ALLOC:.*]] = memref.alloc(%[[M]]) : memref<?x8xbf16>
// CHECK: arith.cmpi ugt, %[[M]]
// CHECK: arith.cmpi ule, %[[M]]
// CHECK: gpu.launch_func @qnt_kernels::@matmul0_gemv_r1
// CHECK: gpu.launch_func @qnt_kernels::@matmul0_gemv_r2
// CHECK: gpu.launch_func @qnt_kernels::@matmul0_gemv_r4
// CHECK: gpu.launch_func @qnt_kernels::@matmul0_gemv_r8
// CHECK: gpu.launch_func @qnt_kernels::@matmul0_gemv_r16
// CHECK: gpu.launch_func @qnt_kernels::@matmul0_gemm_mma
func.func @dynamic(%x: tensor<?x64xbf16>, %c: tensor<8x64xi8>, %s: tensor<8x1xf32>) -> tensor<?x8xbf16> {
  %y = qnt.matmul %x, #qnt.uniform<bits = 8>(%c, %s) : (tensor<?x64xbf16>, tensor<8x64xi8>, tensor<8x1xf32>) -> tensor<?x8xbf16>
  return %y : tensor<?x8xbf16>
}
