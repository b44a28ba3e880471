// qnt-lower-matmul-cpu activations=int8 on tiled codebook codes: the
// lookup-table kernel at the tensor level (int8-dot=vbmi asks for the x86
// intrinsics whatever the host; the default takes them where the host has
// AVX512-VBMI).
// RUN: quant-opt %s -split-input-file --pass-pipeline="builtin.module(func.func(qnt-lower-matmul-cpu{activations=int8 int8-dot=vbmi threads=1},cse))" | FileCheck %s
// Two parts of row tiles on threads: the tables by group tile and the row
// tiles each an scf.forall.
// RUN: quant-opt %s -split-input-file --pass-pipeline="builtin.module(func.func(qnt-lower-matmul-cpu{activations=int8 int8-dot=vbmi threads=2 parallel-weights=1},cse))" | FileCheck %s --check-prefix=THREADS
// lut-max-rows=0, instructions without VBMI, or row-major codes: no tables.
// RUN: quant-opt %s -split-input-file --pass-pipeline="builtin.module(func.func(qnt-lower-matmul-cpu{activations=int8 int8-dot=vnni threads=1}))" | FileCheck %s --check-prefix=NOLUT
// RUN: quant-opt %s -split-input-file --pass-pipeline="builtin.module(func.func(qnt-lower-matmul-cpu{activations=int8 int8-dot=vbmi lut-max-rows=0 threads=1}))" | FileCheck %s --check-prefix=NOLUT
// RUN: quant-opt %s -split-input-file --pass-pipeline="builtin.module(func.func(qnt-lower-matmul-cpu{activations=int8 int8-dot=generic threads=1}))" | FileCheck %s --check-prefix=NOLUT
// NOLUT-NOT: vpermi2var
// By default each load of 64 code bytes prefetches the byte 2048 further in
// storage order (clamped to the last of the 768); prefetch=0 does not.
// RUN: quant-opt %s -split-input-file --pass-pipeline="builtin.module(func.func(qnt-lower-matmul-cpu{activations=int8 int8-dot=vbmi threads=1}))" | FileCheck %s --check-prefix=PF
// RUN: quant-opt %s -split-input-file --pass-pipeline="builtin.module(func.func(qnt-lower-matmul-cpu{activations=int8 int8-dot=vbmi threads=1 prefetch=0}))" | FileCheck %s --check-prefix=NOPF
// PF-LABEL: func.func @aqlm
// PF: %[[AHEAD:.*]] = arith.addi %{{.*}}, %c2048 : index
// PF: %[[CLAMPED:.*]] = arith.minui %[[AHEAD]], %c767 : index
// PF-NEXT: memref.prefetch %{{.*}}[%[[CLAMPED]]], read, locality<0>, data : memref<768xi8>
// NOPF-NOT: memref.prefetch

// AQLM 2x8 g8, K = 40 (5 groups), N = 40, codes in tiles of 32 rows by 2
// groups: 3 group tiles (the last half padding), 2 row tiles (the second
// mostly padding). M is dynamic: up to lut-max-rows (4) rows take the
// tables, more the f32 kernel.
// CHECK-LABEL: func.func @aqlm
// CHECK: %[[ROWS:.*]] = tensor.dim %arg0
// CHECK: %[[SMALL:.*]] = arith.cmpi ule, %[[ROWS]], %c4
// CHECK: scf.if %[[SMALL]] -> (tensor<?x40xf32>)
// The codebooks as [codebook, t, entry], then per group tile and row the
// f32 table entries, 16 at a time, summed over the group's 8 inputs.
// CHECK: linalg.transpose ins(%arg2 : tensor<2x256x8xf32>) outs(%{{.*}} : tensor<2x8x256xf32>) permutation = [0, 2, 1]
// CHECK: scf.for %{{.*}} = %c0 to %c3 step %c1 iter_args({{.*}}) -> (tensor<?x3072xi8>, tensor<?x3xf32>)
// CHECK: linalg.fill ins(%{{.*}} : i8) outs(%{{.*}} : tensor<?x1024xi8>)
// CHECK: tensor.empty() : tensor<1024xf32>
// CHECK-COUNT-8: vector.fma %{{.*}} : vector<16xf32>
// CHECK: vector.transfer_write %{{.*}} {in_bounds = [true]} : vector<16xf32>, tensor<1024xf32>
// CHECK: arith.maxnumf %{{.*}} : vector<16xf32>
// One scale per row and group tile: 127 / max |T|; entries rounded half
// to even into int8.
// CHECK: vector.reduction <maxnumf>, %{{.*}} : vector<16xf32> into f32
// CHECK: math.roundeven %{{.*}} : vector<16xf32>
// CHECK: arith.trunci %{{.*}} : vector<16xi32> to vector<16xi8>
// CHECK: tensor.insert_slice %{{.*}} [%[[ROWS]], 1024] [1, 1] : tensor<?x1024xi8> into tensor<?x3072xi8>
// Then group tiles, row tiles, rows: per group the 8 table registers (two
// codebooks of 256 entries), per run of 32 rows one load of 64 code bytes,
// two permutes per codebook picked by bit 7 of the code, codebook 0 in the
// even bytes, pairs added into i16 lanes.
// CHECK: %[[CODES:.*]] = tensor.collapse_shape %arg1 {{\[\[}}0], [1], [2, 3, 4]] : tensor<3x2x2x32x2xi8> into tensor<3x2x128xi8>
// CHECK: scf.for %[[GT:.*]] = %c0 to %c3 step %c1
// CHECK: scf.for %[[RT:.*]] = %c0 to %{{.*}} step %c1
// CHECK: scf.for %{{.*}} = %c0 to %[[ROWS]] step %c1
// CHECK: scf.for %{{.*}} = %c0 to %c2 step %c1 iter_args(%[[SUM:.*]] = %{{.*}}) -> (vector<32xi16>)
// CHECK-COUNT-8: vector.transfer_read %{{.*}} : tensor<?x3072xi8>, vector<64xi8>
// CHECK: %[[IDX:.*]] = vector.transfer_read %[[CODES]][%[[GT]], %[[RT]], %{{.*}}]{{.*}} : tensor<3x2x128xi8>, vector<64xi8>
// CHECK: %[[HIGH:.*]] = arith.cmpi slt, %[[IDX]], %{{.*}} : vector<64xi8>
// CHECK: %[[L0:.*]] = qnt.intrinsic "llvm.x86.avx512.vpermi2var.qi.512"(%{{.*}}, %[[IDX]], %{{.*}})
// CHECK: %[[H0:.*]] = qnt.intrinsic "llvm.x86.avx512.vpermi2var.qi.512"(%{{.*}}, %[[IDX]], %{{.*}})
// CHECK: %[[C0:.*]] = arith.select %[[HIGH]], %[[H0]], %[[L0]] : vector<64xi1>, vector<64xi8>
// CHECK: %[[L1:.*]] = qnt.intrinsic "llvm.x86.avx512.vpermi2var.qi.512"(%{{.*}}, %[[IDX]], %{{.*}})
// CHECK: %[[H1:.*]] = qnt.intrinsic "llvm.x86.avx512.vpermi2var.qi.512"(%{{.*}}, %[[IDX]], %{{.*}})
// CHECK: %[[C1:.*]] = arith.select %[[HIGH]], %[[H1]], %[[L1]] : vector<64xi1>, vector<64xi8>
// CHECK: %[[PAIRS:.*]] = arith.select %{{.*}}, %[[C0]], %[[C1]] : vector<64xi1>, vector<64xi8>
// CHECK: %[[ROWSUMS:.*]] = qnt.intrinsic "llvm.x86.avx512.pmaddubs.w.512"(%{{.*}}, %[[PAIRS]]) : (vector<64xi8>, vector<64xi8>) -> vector<32xi16>
// CHECK: arith.addi %[[SUM]], %[[ROWSUMS]] : vector<32xi16>
// Each group tile's sums times its table scale, then the row scales (zero
// past N), and the padding columns dropped.
// CHECK: arith.sitofp %{{.*}} : vector<32xi32> to vector<32xf32>
// CHECK: vector.fma %{{.*}} : vector<32xf32>
// CHECK: vector.transfer_read %{{.*}}, %{{.*}} : tensor<40xf32>, vector<32xf32>
// CHECK: arith.mulf %{{.*}} : vector<32xf32>
// CHECK: tensor.extract_slice %{{.*}}[0, 0] [%[[ROWS]], 40] [1, 1] : tensor<?x64xf32> to tensor<?x40xf32>
// CHECK: } else {
// CHECK-NOT: vpermi2var
// CHECK: return

// THREADS-LABEL: func.func @aqlm
// THREADS: scf.forall (%{{.*}}) in (3) shared_outs({{.*}}) -> (tensor<?x3072xi8>, tensor<?x3xf32>)
// THREADS: tensor.parallel_insert_slice %{{.*}} into %{{.*}}[0, %{{.*}}] [%{{.*}}, 1024] [1, 1]
// THREADS: scf.forall (%{{.*}}) in (2) shared_outs({{.*}}) -> (tensor<?x64xf32>)
// THREADS: tensor.parallel_insert_slice %{{.*}} into %{{.*}}[0, %{{.*}}] [%{{.*}}, 32] [1, 1]
func.func @aqlm(%x: tensor<?x40xf32>, %codes: tensor<3x2x2x32x2xi8>, %books: tensor<2x256x8xf32>, %scales: tensor<40x1xf32>) -> tensor<?x40xf32> {
  %y = qnt.matmul %x, #qnt.codebook<num_codebooks = 2, code_bits = 8, group_size = 8, tile_rows = 32, tile_groups = 2>(%codes, %books, %scales) : (tensor<?x40xf32>, tensor<3x2x2x32x2xi8>, tensor<2x256x8xf32>, tensor<40x1xf32>) -> tensor<?x40xf32>
  return %y : tensor<?x40xf32>
}

// -----

// Row-major codes keep the f32 kernel.
// NOLUT-LABEL: func.func @row_major
// CHECK-LABEL: func.func @row_major
// CHECK-NOT: vpermi2var
// CHECK: return
func.func @row_major(%x: tensor<1x16xf32>, %codes: tensor<8x2x2xi8>, %books: tensor<2x256x8xf32>, %scales: tensor<8x1xf32>) -> tensor<1x8xf32> {
  %y = qnt.matmul %x, #qnt.codebook<num_codebooks = 2, code_bits = 8, group_size = 8>(%codes, %books, %scales) : (tensor<1x16xf32>, tensor<8x2x2xi8>, tensor<2x256x8xf32>, tensor<8x1xf32>) -> tensor<1x8xf32>
  return %y : tensor<1x8xf32>
}
