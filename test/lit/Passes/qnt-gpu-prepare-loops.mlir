// qnt-gpu-prepare-loops: reductions become the innermost iterators (the
// index of the moved loop follows it), and memref.copy becomes a copy
// linalg.generic that the GPU pipeline turns into a kernel.
// RUN: quant-opt %s --pass-pipeline='builtin.module(func.func(qnt-gpu-prepare-loops))' | FileCheck %s

// CHECK-DAG: #[[Q:.*]] = affine_map<(d0, d1, d2) -> (d0, d2)>
// CHECK-DAG: #[[K:.*]] = affine_map<(d0, d1, d2) -> (d2, d1)>
// CHECK-DAG: #[[O:.*]] = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-DAG: #[[THIRD:.*]] = affine_map<(d0, d1, d2) -> (d2)>
// CHECK-DAG: #[[ID:.*]] = affine_map<(d0, d1) -> (d0, d1)>

// CHECK-LABEL: func.func @scores
// CHECK: linalg.generic {indexing_maps = [#[[Q]], #[[K]], #[[O]]], iterator_types = ["parallel", "parallel", "reduction"]}
// CHECK:   %[[I0:.*]] = linalg.index 0
// CHECK:   %[[I1:.*]] = linalg.index 1
// CHECK:   %[[I2:.*]] = linalg.index 2
// CHECK:   %[[OLD1:.*]] = affine.apply #[[THIRD]](%[[I0]], %[[I1]], %[[I2]])
// CHECK:   arith.index_cast %[[OLD1]]
#q = affine_map<(d0, d1, d2) -> (d0, d1)>
#k = affine_map<(d0, d1, d2) -> (d1, d2)>
#o = affine_map<(d0, d1, d2) -> (d0, d2)>
func.func @scores(%q: memref<?x8xf32>, %k: memref<8x?xf32>, %o: memref<?x?xi64>) {
  linalg.generic {indexing_maps = [#q, #k, #o], iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%q, %k : memref<?x8xf32>, memref<8x?xf32>) outs(%o : memref<?x?xi64>) {
  ^bb0(%a: f32, %b: f32, %c: i64):
    %i = linalg.index 1 : index
    %ii = arith.index_cast %i : index to i64
    %s = arith.addi %c, %ii : i64
    linalg.yield %s : i64
  }
  return
}

// Reductions already innermost: unchanged, a named op included.
// CHECK-LABEL: func.func @already_innermost
// CHECK: linalg.matmul
func.func @already_innermost(%a: memref<?x8xf32>, %b: memref<8x16xf32>, %c: memref<?x16xf32>) {
  linalg.matmul ins(%a, %b : memref<?x8xf32>, memref<8x16xf32>) outs(%c : memref<?x16xf32>)
  return
}

// CHECK-LABEL: func.func @insert_rows
// CHECK: %[[VIEW:.*]] = memref.subview
// CHECK-NOT: memref.copy
// CHECK: linalg.generic {indexing_maps = [#[[ID]], #[[ID]]], iterator_types = ["parallel", "parallel"]} ins(%arg0 : memref<?x32xf32>) outs(%[[VIEW]] : memref<?x32xf32, strided<[32, 1], offset: ?>>)
// CHECK-NOT: memref.copy
func.func @insert_rows(%rows: memref<?x32xf32>, %cache: memref<?x32xf32>, %pos: index, %n: index) {
  %view = memref.subview %cache[%pos, 0] [%n, 32] [1, 1] : memref<?x32xf32> to memref<?x32xf32, strided<[32, 1], offset: ?>>
  memref.copy %rows, %view : memref<?x32xf32> to memref<?x32xf32, strided<[32, 1], offset: ?>>
  return
}
