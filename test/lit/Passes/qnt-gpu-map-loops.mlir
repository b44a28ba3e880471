// qnt-gpu-map-loops: every outermost scf.parallel becomes blocks x threads.
// The innermost dimension is tiled by block-size threads, or by the
// smallest whole number of warps that holds a smaller static extent. Leading
// dimensions are collapsed into blocks x, and the tile index goes to
// blocks y. Nested loops run sequentially inside a thread.
// RUN: quant-opt %s --pass-pipeline='builtin.module(func.func(qnt-gpu-map-loops))' | FileCheck %s
// RUN: quant-opt %s --pass-pipeline='builtin.module(func.func(qnt-gpu-map-loops{block-size=128}))' | FileCheck %s --check-prefix=B128
// RUN: not quant-opt %s --pass-pipeline='builtin.module(func.func(qnt-gpu-map-loops{block-size=48}))' 2>&1 | FileCheck %s --check-prefix=BAD

// CHECK-DAG: #[[STRIDE:.*]] = affine_map<(d0) -> (d0 * 2 + 3)>
// BAD: error: qnt-gpu-map-loops: block-size must be a multiple of 32 in 32..1024, got 48

// CHECK-LABEL: func.func @rank1
// CHECK: %[[N:.*]] = arith.muli %{{.*}}, %arg1 : index
// CHECK: %[[T:.*]] = arith.constant 256 : index
// CHECK: %[[STEP:.*]] = arith.muli %{{.*}}, %[[T]] : index
// CHECK: scf.parallel (%[[B:.*]]) = (%{{.*}}) to (%[[N]]) step (%[[STEP]])
// CHECK:   scf.parallel (%[[I:.*]]) = (%{{.*}}) to (%[[STEP]])
// The guard of the ragged last tile:
// CHECK:     arith.cmpi ult, %{{.*}}, %[[N]] : index
// CHECK:     scf.if
// CHECK:       memref.load
// CHECK:   } {mapping = [#gpu.loop_dim_map<processor = thread_x, {{.*}}>]}
// CHECK: } {mapping = [#gpu.loop_dim_map<processor = block_x, {{.*}}>]}
// B128-LABEL: func.func @rank1
// B128: arith.constant 128 : index
func.func @rank1(%a: memref<?xf32>, %n: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  scf.parallel (%i) = (%c0) to (%n) step (%c1) {
    %v = memref.load %a[%i] : memref<?xf32>
    %w = arith.addf %v, %v : f32
    memref.store %w, %a[%i] : memref<?xf32>
    scf.reduce
  }
  return
}

// The (?, 4) leading dimensions become one of extent ? * 4; the static
// innermost extent 40 takes 64 threads (two warps), with either block size.
// CHECK-LABEL: func.func @rank3
// CHECK: %[[M:.*]] = arith.muli %{{.*}}, %arg2 : index
// CHECK: %[[M4:.*]] = arith.muli %[[M]], %{{.*}} : index
// CHECK: %[[T:.*]] = arith.constant 64 : index
// CHECK: scf.parallel (%[[R:.*]], %[[C:.*]]) = ({{.*}}) to (%[[M4]], %{{.*}})
// CHECK:   scf.parallel
// CHECK:     scf.if
// CHECK:       arith.remsi
// CHECK:       arith.divsi
// CHECK:       scf.parallel
// CHECK:       } {mapping = [#gpu.loop_dim_map<processor = sequential, {{.*}}>]}
// CHECK:   } {mapping = [#gpu.loop_dim_map<processor = sequential, {{.*}}>, #gpu.loop_dim_map<processor = thread_x, {{.*}}>]}
// CHECK: } {mapping = [#gpu.loop_dim_map<processor = block_x, {{.*}}>, #gpu.loop_dim_map<processor = block_y, {{.*}}>]}
// B128-LABEL: func.func @rank3
// B128: arith.constant 64 : index
func.func @rank3(%a: memref<?x4x40xf32>, %b: memref<?xf32>, %m: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %c40 = arith.constant 40 : index
  scf.parallel (%i, %j, %k) = (%c0, %c0, %c0) to (%m, %c4, %c40) step (%c1, %c1, %c1) {
    %v = memref.load %a[%i, %j, %k] : memref<?x4x40xf32>
    scf.parallel (%l) = (%c0) to (%m) step (%c1) {
      memref.store %v, %b[%l] : memref<?xf32>
      scf.reduce
    }
    scf.reduce
  }
  return
}

// A loop from 3 by steps of 2 is normalized first (0 .. ceil((n - 3) / 2)),
// so that the tile guard counts iterations, and the body sees 2 * i + 3.
// CHECK-LABEL: func.func @strided
// CHECK: affine.apply #{{.*}}()[%arg1]
// CHECK: scf.parallel (%[[B:.*]]) = (%{{.*}}) to (%[[COUNT:.*]]) step
// CHECK:   scf.parallel (%[[T:.*]]) =
// CHECK:     %[[I:.*]] = arith.addi %[[T]], %[[B]] : index
// CHECK:     arith.cmpi ult, %{{.*}}, %[[COUNT]] : index
// CHECK:     scf.if
// CHECK:       %[[IDX:.*]] = affine.apply #[[STRIDE]](%[[I]])
// CHECK:       memref.store %{{.*}}, %arg0[%[[IDX]]]
func.func @strided(%a: memref<?xf32>, %n: index) {
  %c2 = arith.constant 2 : index
  %c3 = arith.constant 3 : index
  %one = arith.constant 1.0 : f32
  scf.parallel (%i) = (%c3) to (%n) step (%c2) {
    memref.store %one, %a[%i] : memref<?xf32>
    scf.reduce
  }
  return
}
