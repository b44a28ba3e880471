// qnt-cpu-pipeline: tensors with qnt ops down to the LLVM dialect. The
// qnt.matmul becomes a fused loop nest whose innermost (k) loop loads the
// packed i8 code, decodes it and multiplies-accumulates in f32; nothing of the
// tensor, memref, linalg or qnt levels is left.
// RUN: quant-opt %s -split-input-file --qnt-cpu-pipeline | FileCheck %s
// RUN: quant-opt %s -split-input-file --qnt-cpu-pipeline | FileCheck %s --check-prefix=CLEAN
// The registered pipeline and its textual spelling are the same thing.
// RUN: quant-opt %s -split-input-file --qnt-cpu-pipeline > %t.registered.mlir
// RUN: quant-opt %s -split-input-file --pass-pipeline="builtin.module(func.func(qnt-lower-matmul-fused,qnt-lower-to-linalg),canonicalize,one-shot-bufferize{bufferize-function-boundaries function-boundary-type-conversion=identity-layout-map},buffer-results-to-out-params{modify-public-functions},buffer-deallocation-pipeline,convert-bufferization-to-memref,func.func(convert-linalg-to-loops),convert-scf-to-cf,expand-strided-metadata,lower-affine,finalize-memref-to-llvm,convert-math-to-llvm,convert-arith-to-llvm,convert-func-to-llvm,convert-cf-to-llvm,convert-index-to-llvm,convert-ub-to-llvm,reconcile-unrealized-casts)" > %t.textual.mlir
// RUN: diff %t.registered.mlir %t.textual.mlir

// CLEAN-NOT: memref
// CLEAN-NOT: tensor
// CLEAN-NOT: qnt
// CLEAN-NOT: linalg
// CLEAN-NOT: bufferization
// CLEAN-NOT: unrealized_conversion_cast
// CLEAN-NOT: {{(arith|math|scf|cf|func|affine)\.}}

// int4 asymmetric, x [2, 8] times W [4, 8]^T. The result comes back through a
// caller-owned out-parameter: five memref descriptors (x, codes, scales,
// zeros, result) of 7 words each, and no return value.
// CHECK-LABEL: llvm.func @linear
// CHECK-SAME: (%{{[^:]*}}: !llvm.ptr, %{{[^:]*}}: !llvm.ptr, %{{[^:]*}}: i64
// CHECK-SAME: %[[LAST:arg34]]: i64)
// CHECK-NOT: -> !llvm
// The f32 accumulator is zero-filled in a 2-D loop nest first.
// CHECK: %[[F0:.*]] = llvm.mlir.constant(0.000000e+00 : f32) : f32
// CHECK: llvm.call @malloc
// CHECK: llvm.store %[[F0]], %{{.*}} : f32, !llvm.ptr
// Then the m, n, k loops of the matmul.
// CHECK: ^[[M_LOOP:bb[0-9]+]](%[[M:[0-9]+]]: i64):
// CHECK: ^[[N_LOOP:bb[0-9]+]](%[[N:[0-9]+]]: i64):
// CHECK: ^[[K_LOOP:bb[0-9]+]](%[[K:[0-9]+]]: i64):
// CHECK-NEXT: %[[K_COND:.*]] = llvm.icmp "slt" %[[K]], %{{.*}} : i64
// CHECK-NEXT: llvm.cond_br %[[K_COND]], ^[[K_BODY:bb[0-9]+]], ^{{bb[0-9]+}}
// CHECK-NEXT: ^[[K_BODY]]:{{.*}}
// The body, a single block: x[m, k], the accumulator, then the code byte of
// W[n, k] at byte (4k) / 8 of row n, shifted and masked to 4 bits.
// CHECK-NOT: ^bb
// CHECK: %[[X:.*]] = llvm.load %{{.*}} : !llvm.ptr -> f32
// CHECK-NOT: ^bb
// CHECK: %[[ACC:.*]] = llvm.load %{{.*}} : !llvm.ptr -> f32
// CHECK-NOT: ^bb
// CHECK: %[[BYTE:.*]] = llvm.load %{{.*}} : !llvm.ptr -> i8
// CHECK-NEXT: %[[WORD:.*]] = llvm.zext %[[BYTE]] : i8 to i32
// CHECK-NOT: ^bb
// CHECK: %[[SHIFTED:.*]] = llvm.lshr %[[WORD]], %{{.*}} : i32
// CHECK-NEXT: %[[CODE:.*]] = llvm.and %[[SHIFTED]], %{{.*}} : i32
// CHECK-NOT: ^bb
// CHECK: %[[ZERO_POINT_BYTE:.*]] = llvm.load %{{.*}} : !llvm.ptr -> i8
// CHECK-NEXT: %[[ZERO_POINT:.*]] = llvm.zext %[[ZERO_POINT_BYTE]] : i8 to i32
// CHECK-NEXT: %[[DIFF:.*]] = llvm.sub %[[CODE]], %[[ZERO_POINT]] : i32
// CHECK-NEXT: %[[REAL:.*]] = llvm.sitofp %[[DIFF]] : i32 to f32
// CHECK-NOT: ^bb
// CHECK: %[[SCALE:.*]] = llvm.load %{{.*}} : !llvm.ptr -> f32
// CHECK-NEXT: %[[W:.*]] = llvm.fmul %[[REAL]], %[[SCALE]] : f32
// CHECK-NEXT: %[[PRODUCT:.*]] = llvm.fmul %[[X]], %[[W]] : f32
// CHECK-NEXT: %[[SUM:.*]] = llvm.fadd %[[ACC]], %[[PRODUCT]] : f32
// CHECK-NOT: ^bb
// CHECK: llvm.store %[[SUM]], %{{.*}} : f32, !llvm.ptr
// CHECK: %[[K_NEXT:.*]] = llvm.add %[[K]], %{{.*}} : i64
// CHECK-NEXT: llvm.br ^[[K_LOOP]](%[[K_NEXT]] : i64)
// The result is copied to the out-parameter and the buffer freed.
// CHECK: "llvm.intr.memcpy"
// CHECK: llvm.call @free
// CHECK: llvm.return{{$}}
func.func @linear(%x: tensor<2x8xf32>, %codes: tensor<4x4xi8>, %scales: tensor<4x1xf32>, %zeros: tensor<4x1xi8>) -> tensor<2x4xf32> {
  %y = qnt.matmul %x, #qnt.uniform<bits = 4, mode = asymmetric>(%codes, %scales, %zeros) : (tensor<2x8xf32>, tensor<4x4xi8>, tensor<4x1xf32>, tensor<4x1xi8>) -> tensor<2x4xf32>
  return %y : tensor<2x4xf32>
}

// -----

// The other compute ops take their reference lowering on the way: a dequant
// followed by a transpose-B linalg.matmul, smoothing and fake quantization
// (math.roundeven becomes llvm.intr.roundeven) all reach LLVM.
// CHECK-LABEL: llvm.func @reference_ops
// CHECK-DAG: llvm.fdiv
// CHECK-DAG: llvm.intr.roundeven
// CHECK-DAG: llvm.intr.fabs
// CHECK-DAG: llvm.bitcast %{{.*}} : i32 to f32
// CHECK: llvm.return
func.func @reference_ops(%x: tensor<2x8xf32>, %s: tensor<8xf32>, %codes: tensor<4x4xi8>, %scales: tensor<4x2xf32>, %acc: tensor<2x4xf32>) -> tensor<2x4xf32> {
  %xs = qnt.smooth %x, %s : tensor<2x8xf32>, tensor<8xf32>
  %xq = qnt.fake_quant %xs {bits = 8, granularity = #qnt<act_granularity per_token>} : tensor<2x8xf32>
  %w = qnt.dequant #qnt.minifloat<exponent_bits = 2, mantissa_bits = 1, granularity = per_group, group_size = 4>(%codes, %scales) : (tensor<4x4xi8>, tensor<4x2xf32>) -> tensor<4x8xf32>
  %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                      affine_map<(m, n, k) -> (n, k)>,
                                      affine_map<(m, n, k) -> (m, n)>]
      ins(%xq, %w : tensor<2x8xf32>, tensor<4x8xf32>) outs(%acc : tensor<2x4xf32>) -> tensor<2x4xf32>
  return %y : tensor<2x4xf32>
}
