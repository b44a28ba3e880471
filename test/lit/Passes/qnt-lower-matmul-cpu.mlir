// qnt-lower-matmul-cpu: the vector kernels at the tensor level, with the
// kernel shape given explicitly (the default width is the host's).
// RUN: quant-opt %s -split-input-file --pass-pipeline="builtin.module(func.func(qnt-lower-matmul-cpu{vector-width=16 unroll=2 row-tile=4},cse))" | FileCheck %s
// RUN: quant-opt %s -split-input-file --pass-pipeline="builtin.module(func.func(qnt-lower-matmul-cpu{strategy=loops}))" | FileCheck %s --check-prefix=LOOPS
// RUN: quant-opt %s -split-input-file --pass-pipeline="builtin.module(func.func(qnt-lower-matmul-cpu{vector-width=16 col-tile=2 threads=2 parallel-weights=1}))" | FileCheck %s --check-prefix=PAR
// RUN: not quant-opt %s --pass-pipeline="builtin.module(func.func(qnt-lower-matmul-cpu{unroll=0}))" 2>&1 | FileCheck %s --check-prefix=BAD

// BAD: error: qnt-lower-matmul-cpu: vector-width, threads and lut-max-rows must be >= 0, prefetch >= -1, unroll, row-tile and col-tile >= 1

// int4 g32, K = 80, N = 6: one tile of 4 weight rows, then 2 single rows;
// within a weight tile, tiles of 4 activation rows of the dynamic M, then
// single rows. The k loop takes 2 runs of 16 per step (0..64) into 16
// accumulators (4 rows x 4 weight rows), then single runs (64..80). Each
// run of 16 codes is one 8-byte read of the packed row, widened once; the
// low and the high nibbles are masked out of all 8 bytes and interleaved
// back into element order, then dequantized with the group's zero point
// and scale.
// CHECK-LABEL: func.func @int4
// CHECK: %[[M:.*]] = tensor.dim %{{.*}}, %c0
// CHECK: scf.for %[[N0:.*]] = %c0 to %c4 step %c4 iter_args
// CHECK: scf.for %{{.*}} = %c0 to %{{.*}} step %c4 iter_args
// CHECK: %{{.*}}:16 = scf.for %{{.*}} = %c0 to %c64 step %c32 iter_args({{.*}}) -> ({{(vector<16xf32>, )+}}vector<16xf32>)
// CHECK: %[[BYTES:.*]] = vector.transfer_read %{{.*}}[%[[N0]], %{{.*}}], %{{.*}} {in_bounds = [true]} : tensor<6x40xi8>, vector<8xi8>
// CHECK-NEXT: %[[WORDS:.*]] = arith.extui %[[BYTES]] : vector<8xi8> to vector<8xi32>
// CHECK-NEXT: %[[MASK:.*]] = arith.constant dense<15> : vector<8xi32>
// CHECK-NEXT: %[[LOW:.*]] = arith.andi %[[WORDS]], %[[MASK]] : vector<8xi32>
// CHECK-NEXT: %[[FOUR:.*]] = arith.constant dense<4> : vector<8xi32>
// CHECK-NEXT: %[[SHIFTED:.*]] = arith.shrui %[[WORDS]], %[[FOUR]] : vector<8xi32>
// CHECK-NEXT: %[[HIGH:.*]] = arith.andi %[[SHIFTED]], %[[MASK]] : vector<8xi32>
// CHECK-NEXT: %[[CODES:.*]] = vector.interleave %[[LOW]], %[[HIGH]] : vector<8xi32> -> vector<16xi32>
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
// The single runs, then each accumulator reduced.
// CHECK: scf.for %{{.*}} = %c64 to %c80 step %c16 iter_args
// CHECK: vector.reduction <add>, %{{.*}} fastmath<reassoc> : vector<16xf32> into f32
// CHECK: tensor.insert
// The 1-row remainder of M, then the remaining weight rows one at a time.
// CHECK: scf.for %{{.*}} = %{{.*}} to %[[M]] step %c1{{[_0-9]*}} iter_args
// CHECK: scf.for %{{.*}} = %c4 to %c6 step %c1 iter_args

// With threads (and tiles of 2 weight rows), the 3 weight tiles form an
// scf.forall; each computes its [M, 2] column slice of the result and
// inserts it in parallel.
// PAR-LABEL: func.func @int4
// PAR: scf.forall (%{{.*}}) in (3) shared_outs(%[[OUT:.*]] = %{{.*}}) -> (tensor<?x6xf32>)
// PAR: tensor.extract_slice %[[OUT]][0, %[[N0:.*]]] [%[[M:.*]], 2] [1, 1]
// PAR: scf.forall.in_parallel
// PAR-NEXT: tensor.parallel_insert_slice %{{.*}} into %[[OUT]][0, %[[N0]]] [%[[M]], 2] [1, 1]
func.func @int4(%x: tensor<?x80xf32>, %codes: tensor<6x40xi8>, %scales: tensor<6x3xf32>, %zeros: tensor<6x3xi8>) -> tensor<?x6xf32> {
  %y = qnt.matmul %x, #qnt.uniform<bits = 4, mode = asymmetric, granularity = per_group, group_size = 32>(%codes, %scales, %zeros) : (tensor<?x80xf32>, tensor<6x40xi8>, tensor<6x3xf32>, tensor<6x3xi8>) -> tensor<?x6xf32>
  return %y : tensor<?x6xf32>
}

// LOOPS-LABEL: func.func @int4
// LOOPS: linalg.generic
// LOOPS-SAME: iterator_types = ["parallel", "parallel", "reduction"]
// LOOPS-NOT: vector.

// -----

// A salient-channel weight (16 int4 channels, 48 binarized) runs as two
// kernels: one loop copies each input column to its part's column (the
// channel map's entry c >= 0, else -1 - c), then the int4 part's kernel
// and the binary part's, which adds the first result; neither dispatches
// on the map lane by lane. The parts start at zero and each entry is
// clamped into its part (minui with 15 or 47), so that a lying map cannot
// write out of bounds.
// CHECK-LABEL: func.func @salient
// CHECK: linalg.fill {{.*}} -> tensor<?x16xf32>
// CHECK: linalg.fill {{.*}} -> tensor<?x48xf32>
// CHECK: scf.for {{.*}} -> (tensor<?x16xf32>, tensor<?x48xf32>)
// CHECK: scf.for {{.*}} to %c64
// CHECK-DAG: %[[LAST_SALIENT:.*]] = arith.constant 15 : index
// CHECK-DAG: %[[LAST_REST:.*]] = arith.constant 47 : index
// CHECK: %[[BOUND:.*]] = arith.select %{{.*}}, %[[LAST_SALIENT]], %[[LAST_REST]] : index
// CHECK: arith.minui %{{.*}}, %[[BOUND]] : index
// CHECK: scf.if {{.*}} -> (tensor<?x16xf32>, tensor<?x48xf32>)
// CHECK: tensor.insert {{.*}} : tensor<?x16xf32>
// CHECK: tensor.insert {{.*}} : tensor<?x48xf32>
// CHECK-NOT: scf.if
// CHECK: %[[SALIENT:.*]] = scf.for {{.*}} -> (tensor<?x2xf32>)
// CHECK-NOT: scf.if
// CHECK-NOT: vector.from_elements
// CHECK: tensor.extract %[[SALIENT]]
// CHECK: return
func.func @salient(%x: tensor<?x64xf32>, %map: tensor<64xi32>, %codes: tensor<2x8xi8>, %scales: tensor<2x1xf32>, %zeros: tensor<2x1xi8>, %signs: tensor<2x6xi8>, %alpha: tensor<2x1xf32>, %mu: tensor<2x1xf32>) -> tensor<?x2xf32> {
  %y = qnt.matmul %x, #qnt.salient<num_salient = 16, salient = #qnt.uniform<bits = 4, mode = asymmetric>, rest = #qnt.binary<mode = asymmetric>>(%map, %codes, %scales, %zeros, %signs, %alpha, %mu) : (tensor<?x64xf32>, tensor<64xi32>, tensor<2x8xi8>, tensor<2x1xf32>, tensor<2x1xi8>, tensor<2x6xi8>, tensor<2x1xf32>, tensor<2x1xf32>) -> tensor<?x2xf32>
  return %y : tensor<?x2xf32>
}

// -----

// Codebooks (groups of 2): a run of 16 reads each group's code once and its
// word as one vector<2xf32>, placed at the group's offset in the run, then
// scaled by the row scale. K = 18: one run of 16, then two columns through
// the scalar hook.
// CHECK-LABEL: func.func @codebook
// CHECK-NOT: vector.from_elements
// CHECK: vector.transfer_read %{{.*}} : tensor<1x256x2xf32>, vector<2xf32>
// CHECK: vector.insert_strided_slice %{{.*}} {offsets = [0], strides = [1]} : vector<2xf32> into vector<16xf32>
// CHECK-COUNT-7: vector.insert_strided_slice %{{.*}} : vector<2xf32> into vector<16xf32>
// CHECK: arith.mulf %{{.*}} : vector<16xf32>
// CHECK-NOT: vector.from_elements
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
