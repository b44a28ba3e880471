// qnt-lower-matmul-cpu: the vector kernels at the tensor level, with the
// kernel shape given explicitly (the default width is the host's).
// RUN: quant-opt %s -split-input-file --pass-pipeline="builtin.module(func.func(qnt-lower-matmul-cpu{vector-width=16 unroll=2 row-tile=4},cse))" | FileCheck %s
// RUN: quant-opt %s -split-input-file --pass-pipeline="builtin.module(func.func(qnt-lower-matmul-cpu{strategy=loops}))" | FileCheck %s --check-prefix=LOOPS
// RUN: not quant-opt %s --pass-pipeline="builtin.module(func.func(qnt-lower-matmul-cpu{unroll=0}))" 2>&1 | FileCheck %s --check-prefix=BAD

// BAD: error: qnt-lower-matmul-cpu: vector-width must be >= 0, unroll and row-tile >= 1

// int4 g32, K = 80: n outermost; row tiles of 4 and a 1-row remainder loop
// over the dynamic M; a k loop of 2 runs of 16 per step (0..64) with an
// accumulator each, then one single run (64..80). Each run of 16 codes is
// one 8-byte read of the packed row, spread by a constant shuffle, shifted
// per lane and masked, and dequantized with its group's zero and scale.
// CHECK-LABEL: func.func @int4
// CHECK: %[[M:.*]] = tensor.dim %{{.*}}, %c0
// CHECK: scf.for %[[N:.*]] = %{{.*}} to %c6 step %c1 iter_args
// CHECK: scf.for %{{.*}} = %{{.*}} to %{{.*}} step %c4 iter_args
// CHECK: scf.for %[[K:.*]] = %{{.*}} to %c64 step %c32 iter_args(%{{.*}} = %[[ZERO:.*]], %{{.*}} = %[[ZERO]], %{{.*}} = %[[ZERO]], %{{.*}} = %[[ZERO]], %{{.*}} = %[[ZERO]], %{{.*}} = %[[ZERO]], %{{.*}} = %[[ZERO]], %{{.*}} = %[[ZERO]]) -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>)
// CHECK: %[[BYTES:.*]] = vector.transfer_read %{{.*}}[%[[N]], %{{.*}}], %{{.*}} {in_bounds = [true]} : tensor<6x40xi8>, vector<8xi8>
// CHECK-NEXT: %[[SPREAD:.*]] = vector.shuffle %[[BYTES]], %[[BYTES]] [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7] : vector<8xi8>, vector<8xi8>
// CHECK-NEXT: %[[WIDE:.*]] = arith.extui %[[SPREAD]] : vector<16xi8> to vector<16xi32>
// CHECK-NEXT: %[[SHIFTS:.*]] = arith.constant dense<[0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4]> : vector<16xi32>
// CHECK-NEXT: %[[SHIFTED:.*]] = arith.shrui %[[WIDE]], %[[SHIFTS]] : vector<16xi32>
// CHECK-NEXT: %[[MASK:.*]] = arith.constant dense<15> : vector<16xi32>
// CHECK-NEXT: %[[CODES:.*]] = arith.andi %[[SHIFTED]], %[[MASK]] : vector<16xi32>
// CHECK: %[[ZP:.*]] = tensor.extract %{{.*}} : tensor<6x3xi8>
// CHECK-NEXT: %[[ZP32:.*]] = arith.extui %[[ZP]] : i8 to i32
// CHECK-NEXT: %[[ZPS:.*]] = vector.broadcast %[[ZP32]] : i32 to vector<16xi32>
// CHECK-NEXT: %[[DIFF:.*]] = arith.subi %[[CODES]], %[[ZPS]] : vector<16xi32>
// CHECK-NEXT: %[[REAL:.*]] = arith.sitofp %[[DIFF]] : vector<16xi32> to vector<16xf32>
// CHECK-NEXT: %[[SCALE:.*]] = tensor.extract %{{.*}} : tensor<6x3xf32>
// CHECK-NEXT: %[[SCALES:.*]] = vector.broadcast %[[SCALE]] : f32 to vector<16xf32>
// CHECK-NEXT: %[[W:.*]] = arith.mulf %[[REAL]], %[[SCALES]] : vector<16xf32>
// CHECK: %[[X:.*]] = vector.transfer_read %{{.*}} {in_bounds = [true]} : tensor<?x80xf32>, vector<16xf32>
// CHECK-NEXT: vector.fma %[[X]], %[[W]], %{{.*}} : vector<16xf32>
// CHECK: scf.yield
// The single runs, then the accumulators of a row summed and reduced.
// CHECK: scf.for %{{.*}} = %c64 to %c80 step %c16 iter_args
// CHECK: vector.reduction <add>, %{{.*}} fastmath<reassoc> : vector<16xf32> into f32
// CHECK: tensor.insert
// The 1-row remainder of M.
// CHECK: scf.for %{{.*}} = %{{.*}} to %[[M]] step %c1 iter_args
func.func @int4(%x: tensor<?x80xf32>, %codes: tensor<6x40xi8>, %scales: tensor<6x3xf32>, %zeros: tensor<6x3xi8>) -> tensor<?x6xf32> {
  %y = qnt.matmul %x, #qnt.uniform<bits = 4, mode = asymmetric, granularity = per_group, group_size = 32>(%codes, %scales, %zeros) : (tensor<?x80xf32>, tensor<6x40xi8>, tensor<6x3xf32>, tensor<6x3xi8>) -> tensor<?x6xf32>
  return %y : tensor<?x6xf32>
}

// LOOPS-LABEL: func.func @int4
// LOOPS: linalg.generic
// LOOPS-SAME: iterator_types = ["parallel", "parallel", "reduction"]
// LOOPS-NOT: vector.

// -----

// An encoding without a vector override (codebooks) gets the default: the
// scalar hook per lane, gathered with vector.from_elements. K = 18: one
// run of 16, then two columns through the scalar hook.
// CHECK-LABEL: func.func @codebook
// CHECK: vector.from_elements %{{.*}} : vector<16xf32>
// CHECK: vector.reduction <add>
// CHECK-COUNT-2: arith.mulf %{{.*}} : f32
// CHECK: return
func.func @codebook(%x: tensor<1x18xf32>, %codes: tensor<2x9x1xi8>, %books: tensor<1x256x2xf32>, %scales: tensor<2x1xf32>) -> tensor<1x2xf32> {
  %y = qnt.matmul %x, #qnt.codebook<num_codebooks = 1, code_bits = 8, group_size = 2>(%codes, %books, %scales) : (tensor<1x18xf32>, tensor<2x9x1xi8>, tensor<1x256x2xf32>, tensor<2x1xf32>) -> tensor<1x2xf32>
  return %y : tensor<1x2xf32>
}

// -----

// A dense f32 transpose-B linalg.matmul (a float linear) gets the same
// kernel reading W directly, and adds its init.
// CHECK-LABEL: func.func @dense
// CHECK-NOT: linalg.matmul
// CHECK: vector.transfer_read %{{.*}} : tensor<3x32xf32>, vector<16xf32>
// CHECK: vector.fma
// CHECK: %[[INIT:.*]] = tensor.extract %{{.*}} : tensor<2x3xf32>
// CHECK-NEXT: arith.addf %[[INIT]], %{{.*}} : f32
func.func @dense(%x: tensor<2x32xf32>, %w: tensor<3x32xf32>, %acc: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                      affine_map<(m, n, k) -> (n, k)>,
                                      affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %w : tensor<2x32xf32>, tensor<3x32xf32>) outs(%acc : tensor<2x3xf32>) -> tensor<2x3xf32>
  return %y : tensor<2x3xf32>
}

// LOOPS-LABEL: func.func @dense
// LOOPS: linalg.matmul
