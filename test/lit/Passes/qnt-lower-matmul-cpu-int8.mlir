// qnt-lower-matmul-cpu activations=int8: the int8-activation kernels at the
// tensor level, with the instruction set given explicitly (the default is
// the host's).
// RUN: quant-opt %s -split-input-file --pass-pipeline="builtin.module(func.func(qnt-lower-matmul-cpu{activations=int8 int8-dot=vnni threads=1},cse))" | FileCheck %s
// RUN: quant-opt %s -split-input-file --pass-pipeline="builtin.module(func.func(qnt-lower-matmul-cpu{activations=int8 int8-dot=generic threads=1},cse))" | FileCheck %s --check-prefix=GENERIC
// RUN: quant-opt %s -split-input-file --pass-pipeline="builtin.module(func.func(qnt-lower-matmul-cpu{activations=int8 int8-dot=vbmi threads=1},cse))" | FileCheck %s --check-prefix=VBMI
// RUN: quant-opt %s -split-input-file --pass-pipeline="builtin.module(func.func(qnt-lower-matmul-cpu{activations=int8 int8-dot=vnni threads=1}),qnt-lower-intrinsics)" | FileCheck %s --check-prefix=LLVM
// By default the int8 kernel prefetches codes, integer ones and those read
// through a table alike.
// RUN: quant-opt %s -split-input-file --pass-pipeline="builtin.module(func.func(qnt-lower-matmul-cpu{activations=int8 int8-dot=vnni threads=1}))" | FileCheck %s --check-prefix=PF
// PF-LABEL: func.func @int4
// PF: memref.prefetch
// PF-LABEL: func.func @e2m1
// PF: memref.prefetch
// PF-LABEL: func.func @e4m3
// prefetch=0: no prefetch, no view of the codes.
// RUN: quant-opt %s -split-input-file --pass-pipeline="builtin.module(func.func(qnt-lower-matmul-cpu{activations=int8 int8-dot=vnni threads=1 prefetch=0}))" | FileCheck %s --check-prefix=NOPREFETCH
// NOPREFETCH-NOT: memref.prefetch
// NOPREFETCH-NOT: bufferization.to_buffer

// int4 g128, K = 256, N = 8. First the activations of each row and group:
// max |x|, then q = round(x * 127 / max) written to a [M, 256] i8 tensor
// with each 128-element chunk stored as its even then its odd elements (the
// order of the low and high nibbles of 64 code bytes), and per group the
// scale and scale * sum(q).
// CHECK-LABEL: func.func @int4
// CHECK: %[[XQ0:.*]] = linalg.fill ins(%{{.*}} : i8) outs(%{{.*}} : tensor<?x256xi8>)
// CHECK: vector.reduction <maxnumf>
// CHECK: math.roundeven %{{.*}} : vector<16xf32>
// CHECK: arith.fptosi %{{.*}} : vector<16xf32> to vector<16xi32>
// CHECK: %[[Q8:.*]] = arith.trunci %{{.*}} : vector<16xi32> to vector<16xi8>
// CHECK: vector.shuffle %[[Q8]], %[[Q8]] [0, 2, 4, 6, 8, 10, 12, 14]
// CHECK: vector.shuffle %[[Q8]], %[[Q8]] [1, 3, 5, 7, 9, 11, 13, 15]
// Then one weight row at a time (col-tile 1) for tiles of 8 activation
// rows, both scale groups in one iteration (unroll 4, clamped to the
// groups there are): per group (one chunk of 64 code bytes), the low and
// high nibbles and two byte dot products per row, then the group's scales.
// CHECK: %[[BUF:.*]] = bufferization.to_buffer %{{.*}} read_only : tensor<8x128xi8> to memref<8x128xi8>
// CHECK: %[[FLAT:.*]] = memref.collapse_shape %[[BUF]] {{\[\[}}0, 1]] : memref<8x128xi8> into memref<1024xi8>
// The scales and zero points are viewed the same way.
// CHECK: %[[SBUF:.*]] = bufferization.to_buffer %{{.*}} read_only : tensor<8x2xf32> to memref<8x2xf32>
// CHECK: %[[SFLAT:.*]] = memref.collapse_shape %[[SBUF]] {{\[\[}}0, 1]] : memref<8x2xf32> into memref<16xf32>
// CHECK: %[[ZBUF:.*]] = bufferization.to_buffer %{{.*}} read_only : tensor<8x2xi8> to memref<8x2xi8>
// CHECK: %[[ZFLAT:.*]] = memref.collapse_shape %[[ZBUF]] {{\[\[}}0, 1]] : memref<8x2xi8> into memref<16xi8>
// CHECK: scf.for %[[N:.*]] = %c0 to %c8 step %c1
// Before each tile, the scales and zero points of the weight row as many
// rows ahead as 4096 bytes of codes span (32 rows of 128 bytes), clamped to
// the last row: the first element of each row, and its last (a row of two
// elements may start at the last of a line's).
// CHECK: %[[SROW:.*]] = arith.addi %[[N]], %c32 : index
// CHECK: %[[SCLAMPED:.*]] = arith.minui %[[SROW]], %c7 : index
// CHECK: %[[SAT:.*]] = arith.muli %[[SCLAMPED]], %c2 : index
// CHECK-NEXT: memref.prefetch %[[SFLAT]][%[[SAT]]], read, locality<0>, data : memref<16xf32>
// CHECK-NEXT: %[[SLAST:.*]] = arith.addi %[[SAT]], %c1 : index
// CHECK-NEXT: memref.prefetch %[[SFLAT]][%[[SLAST]]], read, locality<0>, data : memref<16xf32>
// CHECK-NEXT: memref.prefetch %[[ZFLAT]][%[[SAT]]], read, locality<0>, data : memref<16xi8>
// CHECK-NEXT: memref.prefetch %[[ZFLAT]][%[[SLAST]]], read, locality<0>, data : memref<16xi8>
// CHECK-NOT: memref.prefetch %[[SFLAT]]
// CHECK: scf.for %[[G:.*]] = %c0 to %c2 step %c2 iter_args({{.*}}) -> ({{(vector<16xf32>, )+}}vector<16xf32>)
// CHECK: %[[CHUNKSTART:.*]] = arith.muli %[[G]], %c64 : index
// CHECK: %[[BYTES:.*]] = vector.transfer_read %[[CODES:.*]][%[[N]], %[[CHUNKSTART]]], %{{.*}} {in_bounds = [true]} : tensor<8x128xi8>, vector<64xi8>
// Each load of codes prefetches the byte 4096 further (row-major) in a
// one-dimensional view of the same buffer once bufferized. The row's part
// is clamped to the start of the last row (7 x 128), so that adding the
// chunk's offset stays in the 8 x 128.
// CHECK: %[[ROWSTART:.*]] = arith.muli %[[N]], %c128 : index
// CHECK: %[[AHEAD:.*]] = arith.addi %[[ROWSTART]], %c4096
// CHECK: %[[CLAMPED:.*]] = arith.minui %[[AHEAD]], %c896
// CHECK: %[[AT:.*]] = arith.addi %[[CLAMPED]], %[[CHUNKSTART]] : index
// CHECK-NEXT: memref.prefetch %[[FLAT]][%[[AT]]], read, locality<0>, data : memref<1024xi8>
// CHECK: %[[LOW:.*]] = arith.andi %[[BYTES]], %{{.*}} : vector<64xi8>
// CHECK: %[[HIGH:.*]] = arith.shrui %[[BYTES]], %{{.*}} : vector<64xi8>
// CHECK: %[[XLOW:.*]] = vector.transfer_read %{{.*}} {in_bounds = [true]} : tensor<?x256xi8>, vector<64xi8>
// CHECK-NEXT: %[[D0:.*]] = qnt.intrinsic "llvm.x86.avx512.vpdpbusd.512"(%{{.*}}, %[[LOW]], %[[XLOW]]) : (vector<16xi32>, vector<64xi8>, vector<64xi8>) -> vector<16xi32>
// CHECK: %[[XHIGH:.*]] = vector.transfer_read %{{.*}} {in_bounds = [true]} : tensor<?x256xi8>, vector<64xi8>
// CHECK-NEXT: %[[D1:.*]] = qnt.intrinsic "llvm.x86.avx512.vpdpbusd.512"(%[[D0]], %[[HIGH]], %[[XHIGH]])
// CHECK: %[[SUM:.*]] = arith.sitofp %[[D1]] : vector<16xi32> to vector<16xf32>
// CHECK-NEXT: %[[SX:.*]] = arith.mulf %[[SUM]], %{{.*}} : vector<16xf32>
// CHECK-NEXT: vector.fma %[[SX]], %{{.*}}, %{{.*}} : vector<16xf32>
// After the groups: the zero-point term from 16 groups at a time.
// CHECK: arith.uitofp %{{.*}} : vector<16xi8> to vector<16xf32>
// CHECK: vector.reduction <add>, %{{.*}} : vector<16xf32> into f32
// CHECK: arith.subf
// CHECK: tensor.insert

// The portable form: the same kernel, the byte dot product as widening
// multiplies and four strided sums.
// GENERIC-LABEL: func.func @int4
// GENERIC-NOT: qnt.intrinsic
// GENERIC: arith.extui %{{.*}} : vector<64xi8> to vector<64xi32>
// GENERIC: %[[S:.*]] = arith.extsi %{{.*}} : vector<64xi8> to vector<64xi32>
// GENERIC: %[[P:.*]] = arith.muli %{{.*}}, %[[S]] : vector<64xi32>
// GENERIC-NEXT: vector.shuffle %[[P]], %[[P]] [0, 4, 8, 12,

// LLVM-LABEL: func.func @int4
// LLVM: llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.512"(%{{.*}}, %{{.*}}, %{{.*}}) : (vector<16xi32>, vector<64xi8>, vector<64xi8>) -> vector<16xi32>
func.func @int4(%x: tensor<?x256xf32>, %c: tensor<8x128xi8>, %s: tensor<8x2xf32>, %z: tensor<8x2xi8>) -> tensor<?x8xf32> {
  %y = qnt.matmul %x, #qnt.uniform<bits = 4, mode = asymmetric, granularity = per_group, group_size = 128>(%c, %s, %z) : (tensor<?x256xf32>, tensor<8x128xi8>, tensor<8x2xf32>, tensor<8x2xi8>) -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}

// -----

// E2M1 g32: the codes become the integers 2 * value + 12 through a 16-entry
// table (vpshufb, the table repeated in each 128-bit lane); four groups
// share a 64-byte chunk, so each i32 lane is scaled by its own group's
// scales. K = 640 is five chunks: a run of four shares the scales of 16
// groups (x scale times weight scale once per row, then one shuffle per
// chunk spreads its four groups over the lanes), and the chunk left over
// reads the scales of its own four groups.
// CHECK-LABEL: func.func @e2m1
// CHECK: arith.constant dense<[12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0, 12,
// CHECK: scf.for {{.*}} -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>)
// CHECK: %[[XS:.*]] = vector.transfer_read %{{.*}} {in_bounds = [true]} : tensor<2x20xf32>, vector<16xf32>
// CHECK: %[[WS:.*]] = vector.transfer_read %{{.*}} {in_bounds = [true]} : tensor<4x20xf32>, vector<16xf32>
// CHECK-NEXT: %[[S:.*]] = arith.mulf %[[XS]], %[[WS]] : vector<16xf32>
// CHECK: qnt.intrinsic "llvm.x86.avx512.pshuf.b.512"
// CHECK: qnt.intrinsic "llvm.x86.avx512.vpdpbusd.512"
// CHECK: vector.shuffle %[[S]], %[[S]] [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]
// CHECK: vector.shuffle %[[S]], %[[S]] [4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7]
// CHECK: vector.shuffle %[[S]], %[[S]] [8, 8, 8, 8, 9, 9, 9, 9, 10, 10, 10, 10, 11, 11, 11, 11]
// CHECK: vector.shuffle %[[S]], %[[S]] [12, 12, 12, 12, 13, 13, 13, 13, 14, 14, 14, 14, 15, 15, 15, 15]
// CHECK: scf.yield
// CHECK: %[[WS4:.*]] = vector.transfer_read %{{.*}} {in_bounds = [true]} : tensor<4x20xf32>, vector<4xf32>
// CHECK-NEXT: %[[S4:.*]] = arith.mulf %{{.*}}, %[[WS4]] : vector<4xf32>
// CHECK: vector.shuffle %[[S4]], %[[S4]] [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]
// The multiplier 1/2 last.
// CHECK: arith.mulf %{{.*}}, %cst{{.*}} : f32
// GENERIC-LABEL: func.func @e2m1
// GENERIC: arith.cmpi eq, %{{.*}} : vector<64xi8>
// GENERIC: arith.select
func.func @e2m1(%x: tensor<2x640xf32>, %c: tensor<4x320xi8>, %s: tensor<4x20xf32>) -> tensor<2x4xf32> {
  %y = qnt.matmul %x, #qnt.minifloat<exponent_bits = 2, mantissa_bits = 1, granularity = per_group, group_size = 32>(%c, %s) : (tensor<2x640xf32>, tensor<4x320xi8>, tensor<4x20xf32>) -> tensor<2x4xf32>
  return %y : tensor<2x4xf32>
}

// -----

// 8-bit OCP minifloats have no integer form (E4M3 spans 2^-9 .. 448): the
// f32 kernel, as without the option.
// CHECK-LABEL: func.func @e4m3
// CHECK-NOT: qnt.intrinsic
// CHECK: vector.fma %{{.*}} : vector<32xf32>
func.func @e4m3(%x: tensor<1x256xf32>, %c: tensor<4x256xi8>, %s: tensor<4x8xf32>) -> tensor<1x4xf32> {
  %y = qnt.matmul %x, #qnt.minifloat<exponent_bits = 4, mantissa_bits = 3, special = ocp, granularity = per_group, group_size = 32>(%c, %s) : (tensor<1x256xf32>, tensor<4x256xi8>, tensor<4x8xf32>) -> tensor<1x4xf32>
  return %y : tensor<1x4xf32>
}

// -----

// 3-bit codes straddle bytes: 64 codes are 24 bytes, each code's byte
// pair picked by a constant shuffle, shifted per lane in 16 bits, masked
// and narrowed to bytes in element order.
// CHECK-LABEL: func.func @int3
// CHECK: %[[B:.*]] = vector.transfer_read %{{.*}} {in_bounds = [true]} : tensor<4x96xi8>, vector<24xi8>
// CHECK: vector.shuffle %[[B]], %[[B]] [0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5,
// CHECK: arith.shrui %{{.*}}, %{{.*}} : vector<64xi16>
// CHECK: %[[CODES:.*]] = arith.trunci %{{.*}} : vector<64xi16> to vector<64xi8>
// CHECK: qnt.intrinsic "llvm.x86.avx512.vpdpbusd.512"(%{{.*}}, %[[CODES]], %{{.*}})
// int8-dot=vbmi: the 24 bytes by one masked load of a 32-byte register from
// a one-dimensional view of the codes, a byte permute gives each 64-bit
// lane the 3 bytes of its 8 codes, vpmultishiftqb moves code t's bits (from
// bit 3t) to byte t, a mask keeps them.
// VBMI-LABEL: func.func @int3
// VBMI: %[[BUF:.*]] = bufferization.to_buffer %{{.*}} read_only : tensor<4x96xi8> to memref<4x96xi8>
// VBMI: %[[FLAT:.*]] = memref.collapse_shape %[[BUF]] {{\[\[}}0, 1]] : memref<4x96xi8> into memref<384xi8>
// VBMI: %[[MASK:.*]] = vector.constant_mask [24] : vector<32xi1>
// VBMI: %[[B:.*]] = vector.maskedload %[[FLAT]][%{{.*}}], %[[MASK]], %{{.*}} : memref<384xi8>, vector<32xi1>, vector<32xi8> into vector<32xi8>
// VBMI: %[[LANES:.*]] = vector.shuffle %[[B]], %[[B]] [0, 1, 2, 0, 0, 0, 0, 0, 3, 4, 5, 3, 3, 3, 3, 3,
// VBMI: %[[SHIFTS:.*]] = arith.constant dense<[0, 3, 6, 9, 12, 15, 18, 21, 0, 3,
// VBMI: %[[SHIFTED:.*]] = qnt.intrinsic "llvm.x86.avx512.pmultishift.qb.512"(%[[SHIFTS]], %[[LANES]]) : (vector<64xi8>, vector<64xi8>) -> vector<64xi8>
// VBMI: %[[CODES:.*]] = arith.andi %[[SHIFTED]], %{{.*}} : vector<64xi8>
// VBMI: qnt.intrinsic "llvm.x86.avx512.vpdpbusd.512"(%{{.*}}, %[[CODES]], %{{.*}})
// One prefetch per cache line the chunks start in: two chunks of 24 bytes
// per group of 128 codes, one prefetch.
// PF-LABEL: func.func @int3
// PF: vector.transfer_read {{.*}} : tensor<4x96xi8>, vector<24xi8>
// PF: memref.prefetch
// PF: vector.transfer_read {{.*}} : tensor<4x96xi8>, vector<24xi8>
// PF-NOT: memref.prefetch
// PF: vector.transfer_read {{.*}} : tensor<4x96xi8>, vector<24xi8>
// PF: memref.prefetch
func.func @int3(%x: tensor<1x256xf32>, %c: tensor<4x96xi8>, %s: tensor<4x2xf32>, %z: tensor<4x2xi8>) -> tensor<1x4xf32> {
  %y = qnt.matmul %x, #qnt.uniform<bits = 3, mode = asymmetric, granularity = per_group, group_size = 128>(%c, %s, %z) : (tensor<1x256xf32>, tensor<4x96xi8>, tensor<4x2xf32>, tensor<4x2xi8>) -> tensor<1x4xf32>
  return %y : tensor<1x4xf32>
}
