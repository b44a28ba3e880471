// qnt-cpu-pipeline: tensors with qnt ops down to the LLVM dialect. The
// qnt.matmul becomes a vector kernel that dequantizes runs of packed codes
// in registers and multiplies-accumulates in f32 vectors; nothing of the
// tensor, memref, vector, linalg or qnt levels is left.
// RUN: quant-opt %s -split-input-file --qnt-cpu-pipeline | FileCheck %s
// RUN: quant-opt %s -split-input-file --qnt-cpu-pipeline | FileCheck %s --check-prefix=CLEAN
// The registered pipeline and its textual spelling are the same thing.
// RUN: quant-opt %s -split-input-file --qnt-cpu-pipeline > %t.registered.mlir
// RUN: quant-opt %s -split-input-file --pass-pipeline="builtin.module(func.func(qnt-lower-matmul-cpu{threads=0},qnt-lower-to-linalg,qnt-approximate-math),canonicalize,one-shot-bufferize{bufferize-function-boundaries function-boundary-type-conversion=identity-layout-map},buffer-results-to-out-params{modify-public-functions},buffer-deallocation-pipeline,convert-bufferization-to-memref,qnt-lower-intrinsics,func.func(convert-linalg-to-loops),scf-forall-to-parallel,convert-scf-to-openmp{num-threads=0},canonicalize,convert-scf-to-cf,expand-strided-metadata,lower-affine,convert-vector-to-llvm,finalize-memref-to-llvm{use-aligned-alloc},convert-math-to-llvm,convert-arith-to-llvm,convert-func-to-llvm,convert-cf-to-llvm,convert-index-to-llvm,convert-ub-to-llvm,convert-openmp-to-llvm,reconcile-unrealized-casts)" > %t.textual.mlir
// RUN: diff %t.registered.mlir %t.textual.mlir
// With int8 activations, the byte dot products are VNNI instructions (on a
// host with AVX512-VNNI) or widening multiplies, and the rest is as clean.
// RUN: quant-opt %s -split-input-file --qnt-cpu-pipeline=int8-activations=1 | FileCheck %s --check-prefixes=CLEAN,INT8
// INT8-LABEL: llvm.func @linear
// INT8: {{llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.512"|llvm.mul .* : vector<64xi32>}}

// CLEAN-NOT: memref
// CLEAN-NOT: tensor
// CLEAN-NOT: qnt
// CLEAN-NOT: linalg
// CLEAN-NOT: bufferization
// CLEAN-NOT: {{^ *%[0-9]+ = vector\.}}
// CLEAN-NOT: unrealized_conversion_cast
// CLEAN-NOT: {{(arith|math|scf|cf|func|affine)\.}}

// int4 asymmetric, x [2, 64] times W [4, 64]^T. The result comes back
// through a caller-owned out-parameter: five memref descriptors (x, codes,
// scales, zeros, result) of 7 words each, and no return value.
// CHECK-LABEL: llvm.func @linear
// CHECK-SAME: (%{{[^:]*}}: !llvm.ptr, %{{[^:]*}}: !llvm.ptr, %{{[^:]*}}: i64
// CHECK-SAME: %[[LAST:arg34]]: i64) {{{$}}
// The matmul is the vector kernel (its width is the host's): a run of
// packed codes is one wide load, widened once; the low and high nibbles of
// every byte are masked out and interleaved back into element order...
// CHECK: %[[BYTES:.*]] = llvm.load %{{.*}} : !llvm.ptr -> vector<[[B:[0-9]+]]xi8>
// CHECK-NEXT: %[[WORDS:.*]] = llvm.zext %[[BYTES]] : vector<[[B]]xi8> to vector<[[B]]xi32>
// CHECK-NEXT: %[[LOW:.*]] = llvm.and %[[WORDS]], %{{.*}} : vector<[[B]]xi32>
// CHECK-NEXT: %[[SHIFTED:.*]] = llvm.lshr %[[WORDS]], %{{.*}} : vector<[[B]]xi32>
// CHECK-NEXT: %[[HIGH:.*]] = llvm.and %[[SHIFTED]], %{{.*}} : vector<[[B]]xi32>
// CHECK-NEXT: %[[CODES:.*]] = llvm.shufflevector %[[LOW]], %[[HIGH]] [0, [[B]], 1, {{.*}}] : vector<[[B]]xi32>
// ... minus the broadcast zero point, times the broadcast scale...
// CHECK: %[[DIFF:.*]] = llvm.sub %[[CODES]], %{{.*}} : vector<[[W:[0-9]+]]xi32>
// CHECK-NEXT: %[[REAL:.*]] = llvm.sitofp %[[DIFF]] : vector<[[W]]xi32> to vector<[[W]]xf32>
// CHECK: %[[DEQUANT:.*]] = llvm.fmul %[[REAL]], %{{.*}} : vector<[[W]]xf32>
// ... and multiplied with a run of x into an accumulator;
// CHECK: %[[X:.*]] = llvm.load %{{.*}} : !llvm.ptr -> vector<[[W]]xf32>
// CHECK-NEXT: llvm.intr.fmuladd(%[[X]], %[[DEQUANT]], %{{.*}}) : (vector<[[W]]xf32>, vector<[[W]]xf32>, vector<[[W]]xf32>) -> vector<[[W]]xf32>
// the accumulators are summed across lanes once per output.
// CHECK: "llvm.intr.vector.reduce.fadd"(%{{.*}}, %{{.*}}) <{fastmathFlags = #llvm.fastmath<reassoc>}> : (f32, vector<[[W]]xf32>) -> f32
// The result is copied to the out-parameter and the buffer freed.
// CHECK: "llvm.intr.memcpy"
// CHECK: llvm.call @free
// CHECK: llvm.return{{$}}
func.func @linear(%x: tensor<2x64xf32>, %codes: tensor<4x32xi8>, %scales: tensor<4x1xf32>, %zeros: tensor<4x1xi8>) -> tensor<2x4xf32> {
  %y = qnt.matmul %x, #qnt.uniform<bits = 4, mode = asymmetric>(%codes, %scales, %zeros) : (tensor<2x64xf32>, tensor<4x32xi8>, tensor<4x1xf32>, tensor<4x1xi8>) -> tensor<2x4xf32>
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
