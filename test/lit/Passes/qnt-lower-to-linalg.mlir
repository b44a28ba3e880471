// qnt-lower-to-linalg: the reference semantics of the qnt compute ops.
// qnt.dequant becomes a linalg.generic over [N, K] whose body reads the
// components with tensor.extract and computes the encoding's formula; the
// other ops become generics, reductions and linalg matmuls. qnt.param and
// qnt.observe are left in place.
// RUN: quant-opt %s -split-input-file --qnt-lower-to-linalg | FileCheck %s

// CHECK-DAG: #[[ID2:.*]] = affine_map<(d0, d1) -> (d0, d1)>

// Uniform int4 asym per group of 4: code = (byte >> (4k % 8)) & 15 from byte
// 4k / 8, zero and scale from group [n, k / 4], value = sitofp(code - zero) * scale.
// CHECK-LABEL: func.func @uniform_int4_asym_group
// CHECK-SAME: (%[[CODES:[^:]*]]: tensor<2x4xi8>, %[[SCALES:[^:]*]]: tensor<2x2xf32>, %[[ZEROS:[^:]*]]: tensor<2x2xi8>)
// CHECK-NOT: qnt.dequant
// CHECK: %[[EMPTY:.*]] = tensor.empty() : tensor<2x8xf32>
// CHECK: %[[W:.*]] = linalg.generic {indexing_maps = [#[[ID2]]], iterator_types = ["parallel", "parallel"]} outs(%[[EMPTY]] : tensor<2x8xf32>)
// CHECK: %[[ROW:.*]] = linalg.index 0 : index
// CHECK: %[[COL:.*]] = linalg.index 1 : index
// CHECK: %[[C4:.*]] = arith.constant 4 : index
// CHECK: %[[BIT:.*]] = arith.muli %[[COL]], %[[C4]] : index
// CHECK: %[[BYTE_INDEX:.*]] = arith.divui %[[BIT]], %{{.*}} : index
// CHECK: %[[BYTE:.*]] = tensor.extract %[[CODES]][%[[ROW]], %[[BYTE_INDEX]]] : tensor<2x4xi8>
// CHECK: %[[WORD:.*]] = arith.extui %[[BYTE]] : i8 to i32
// CHECK: %[[SHIFT_INDEX:.*]] = arith.remui %[[BIT]], %{{.*}} : index
// CHECK: %[[SHIFT:.*]] = arith.index_castui %[[SHIFT_INDEX]] : index to i32
// CHECK: %[[SHIFTED:.*]] = arith.shrui %[[WORD]], %[[SHIFT]] : i32
// CHECK: %[[MASK:.*]] = arith.constant 15 : i32
// CHECK: %[[CODE:.*]] = arith.andi %[[SHIFTED]], %[[MASK]] : i32
// CHECK: %[[GROUP:.*]] = arith.divui %[[COL]], %{{.*}} : index
// CHECK: %[[Z8:.*]] = tensor.extract %[[ZEROS]][%[[ROW]], %[[GROUP]]] : tensor<2x2xi8>
// CHECK: %[[ZERO_POINT:.*]] = arith.extui %[[Z8]] : i8 to i32
// CHECK: %[[DIFF:.*]] = arith.subi %[[CODE]], %[[ZERO_POINT]] : i32
// CHECK: %[[REAL:.*]] = arith.sitofp %[[DIFF]] : i32 to f32
// CHECK: %[[SCALE:.*]] = tensor.extract %[[SCALES]][%[[ROW]], %[[GROUP]]] : tensor<2x2xf32>
// CHECK: %[[VALUE:.*]] = arith.mulf %[[REAL]], %[[SCALE]] : f32
// CHECK: linalg.yield %[[VALUE]] : f32
// CHECK: return %[[W]]
func.func @uniform_int4_asym_group(%codes: tensor<2x4xi8>, %scales: tensor<2x2xf32>, %zeros: tensor<2x2xi8>) -> tensor<2x8xf32> {
  %w = qnt.dequant #qnt.uniform<bits = 4, mode = asymmetric, granularity = per_group, group_size = 4>(%codes, %scales, %zeros) : (tensor<2x4xi8>, tensor<2x2xf32>, tensor<2x2xi8>) -> tensor<2x8xf32>
  return %w : tensor<2x8xf32>
}

// -----

// Uniform int8 symmetric per channel into f16: one byte per code, the implicit
// zero 128, the per-row scale at [n, 0], and a final truncf.
// CHECK-LABEL: func.func @uniform_int8_sym_f16
// CHECK-SAME: (%[[CODES:[^:]*]]: tensor<2x8xi8>, %[[SCALES:[^:]*]]: tensor<2x1xf32>)
// CHECK: linalg.generic {{.*}} outs(%{{.*}} : tensor<2x8xf16>)
// CHECK: ^bb0(%{{.*}}: f16):
// CHECK: %[[ROW:.*]] = linalg.index 0
// CHECK: %[[COL:.*]] = linalg.index 1
// CHECK: %[[BYTE:.*]] = tensor.extract %[[CODES]][%[[ROW]], %[[COL]]] : tensor<2x8xi8>
// CHECK: %[[CODE:.*]] = arith.extui %[[BYTE]] : i8 to i32
// CHECK-NOT: arith.shrui
// CHECK-DAG: %[[C0:.*]] = arith.constant 0 : index
// CHECK-DAG: %[[ZERO_POINT:.*]] = arith.constant 128 : i32
// CHECK: %[[DIFF:.*]] = arith.subi %[[CODE]], %[[ZERO_POINT]] : i32
// CHECK: %[[REAL:.*]] = arith.sitofp %[[DIFF]] : i32 to f32
// CHECK: %[[SCALE:.*]] = tensor.extract %[[SCALES]][%[[ROW]], %[[C0]]] : tensor<2x1xf32>
// CHECK: %[[VALUE:.*]] = arith.mulf %[[REAL]], %[[SCALE]] : f32
// CHECK: %[[HALF:.*]] = arith.truncf %[[VALUE]] : f32 to f16
// CHECK: linalg.yield %[[HALF]] : f16
func.func @uniform_int8_sym_f16(%codes: tensor<2x8xi8>, %scales: tensor<2x1xf32>) -> tensor<2x8xf16> {
  %w = qnt.dequant #qnt.uniform<bits = 8>(%codes, %scales) : (tensor<2x8xi8>, tensor<2x1xf32>) -> tensor<2x8xf16>
  return %w : tensor<2x8xf16>
}

// -----

// Uniform int3 per tensor: a code can straddle two bytes, so the next byte
// (clamped to the last byte of the row, 2) is read too and shifted in above.
// CHECK-LABEL: func.func @uniform_int3_straddle
// CHECK-SAME: (%[[CODES:[^:]*]]: tensor<2x3xi8>, %[[SCALES:[^:]*]]: tensor<1x1xf32>)
// CHECK: %[[ROW:.*]] = linalg.index 0
// CHECK: %[[LOW:.*]] = tensor.extract %[[CODES]][%[[ROW]], %[[BYTE_INDEX:.*]]] : tensor<2x3xi8>
// CHECK: %[[LOW32:.*]] = arith.extui %[[LOW]] : i8 to i32
// CHECK-DAG: %[[LAST:.*]] = arith.constant 2 : index
// CHECK-DAG: %[[NEXT:.*]] = arith.addi %[[BYTE_INDEX]], %{{.*}} : index
// CHECK: %[[CLAMPED:.*]] = arith.minui %[[NEXT]], %[[LAST]] : index
// CHECK: %[[HIGH:.*]] = tensor.extract %[[CODES]][%[[ROW]], %[[CLAMPED]]] : tensor<2x3xi8>
// CHECK: %[[HIGH32:.*]] = arith.extui %[[HIGH]] : i8 to i32
// CHECK: %[[HIGH_SHIFTED:.*]] = arith.shli %[[HIGH32]], %{{.*}} : i32
// CHECK: %[[WORD:.*]] = arith.ori %[[LOW32]], %[[HIGH_SHIFTED]] : i32
// CHECK: %[[SHIFTED:.*]] = arith.shrui %[[WORD]], %{{.*}} : i32
// CHECK: %[[MASK:.*]] = arith.constant 7 : i32
// CHECK: arith.andi %[[SHIFTED]], %[[MASK]] : i32
// CHECK: arith.constant 4 : i32
// CHECK: tensor.extract %[[SCALES]][%{{.*}}, %{{.*}}] : tensor<1x1xf32>
func.func @uniform_int3_straddle(%codes: tensor<2x3xi8>, %scales: tensor<1x1xf32>) -> tensor<2x8xf32> {
  %w = qnt.dequant #qnt.uniform<bits = 3, granularity = per_tensor>(%codes, %scales) : (tensor<2x3xi8>, tensor<1x1xf32>) -> tensor<2x8xf32>
  return %w : tensor<2x8xf32>
}

// -----

// E2M1 per tensor: sign = code >> 3, exponent = (code >> 1) & 3, mantissa =
// code & 1; normals are assembled as f32 bits (exponent + 127 - 1 at bit 23,
// mantissa at bit 22) and bitcast; subnormals are mantissa * 0.5.
// CHECK-LABEL: func.func @minifloat_e2m1
// CHECK: linalg.generic
// CHECK: %[[CODE:.*]] = arith.andi %{{.*}}, %{{.*}} : i32
// CHECK: %[[C3:.*]] = arith.constant 3 : i32
// CHECK: %[[SIGN_SHIFTED:.*]] = arith.shrui %[[CODE]], %[[C3]] : i32
// CHECK: %[[SIGN:.*]] = arith.andi %[[SIGN_SHIFTED]], %{{.*}} : i32
// CHECK: %[[EXP_SHIFTED:.*]] = arith.shrui %[[CODE]], %{{.*}} : i32
// CHECK: %[[EXP_MASK:.*]] = arith.constant 3 : i32
// CHECK: %[[EXPONENT:.*]] = arith.andi %[[EXP_SHIFTED]], %[[EXP_MASK]] : i32
// CHECK: %[[MANTISSA:.*]] = arith.andi %[[CODE]], %{{.*}} : i32
// CHECK: %[[C31:.*]] = arith.constant 31 : i32
// CHECK: %[[SIGN_BITS:.*]] = arith.shli %[[SIGN]], %[[C31]] : i32
// CHECK: %[[BIAS:.*]] = arith.constant 126 : i32
// CHECK: %[[REBIASED:.*]] = arith.addi %[[EXPONENT]], %[[BIAS]] : i32
// CHECK: %[[EXPONENT_BITS:.*]] = arith.shli %[[REBIASED]], %{{.*}} : i32
// CHECK: %[[BITS0:.*]] = arith.ori %[[SIGN_BITS]], %[[EXPONENT_BITS]] : i32
// CHECK: %[[C22:.*]] = arith.constant 22 : i32
// CHECK: %[[MANTISSA_BITS:.*]] = arith.shli %[[MANTISSA]], %[[C22]] : i32
// CHECK: %[[BITS:.*]] = arith.ori %[[BITS0]], %[[MANTISSA_BITS]] : i32
// CHECK: %[[NORMAL:.*]] = arith.bitcast %[[BITS]] : i32 to f32
// CHECK: %[[M:.*]] = arith.uitofp %[[MANTISSA]] : i32 to f32
// CHECK: %[[SUB_STEP:.*]] = arith.constant 5.000000e-01 : f32
// CHECK: %[[SUB:.*]] = arith.mulf %[[M]], %[[SUB_STEP]] : f32
// CHECK: %[[IS_NEG:.*]] = arith.cmpi eq, %[[SIGN]], %{{.*}} : i32
// CHECK: %[[NEG_SUB:.*]] = arith.negf %[[SUB]] : f32
// CHECK: %[[SUBNORMAL:.*]] = arith.select %[[IS_NEG]], %[[NEG_SUB]], %[[SUB]] : f32
// CHECK: %[[IS_SUB:.*]] = arith.cmpi eq, %[[EXPONENT]], %{{.*}} : i32
// CHECK: %[[REAL:.*]] = arith.select %[[IS_SUB]], %[[SUBNORMAL]], %[[NORMAL]] : f32
// CHECK-NOT: 0x7FC00000
// CHECK: %[[SCALE:.*]] = tensor.extract %{{.*}}[%{{.*}}, %{{.*}}] : tensor<1x1xf32>
// CHECK: arith.mulf %[[REAL]], %[[SCALE]] : f32
func.func @minifloat_e2m1(%codes: tensor<2x4xi8>, %scales: tensor<1x1xf32>) -> tensor<2x8xf32> {
  %w = qnt.dequant #qnt.minifloat<exponent_bits = 2, mantissa_bits = 1, granularity = per_tensor>(%codes, %scales) : (tensor<2x4xi8>, tensor<1x1xf32>) -> tensor<2x8xf32>
  return %w : tensor<2x8xf32>
}

// -----

// OCP E4M3: bias 7 (rebias constant 120), subnormal step 2^-9, and the NaN
// code S.1111.111 selected on exponent == 15 and mantissa == 7.
// CHECK-LABEL: func.func @minifloat_e4m3_ocp
// CHECK: arith.constant 120 : i32
// CHECK: arith.bitcast %{{.*}} : i32 to f32
// CHECK: arith.constant 0.001953125 : f32
// CHECK: %[[SUBNORMAL:.*]] = arith.select
// CHECK: %[[REAL:.*]] = arith.select %{{.*}}, %[[SUBNORMAL]], %{{.*}} : f32
// CHECK: %[[C15:.*]] = arith.constant 15 : i32
// CHECK: %[[TOP:.*]] = arith.cmpi eq, %{{.*}}, %[[C15]] : i32
// CHECK: %[[NAN:.*]] = arith.constant 0x7FC00000 : f32
// CHECK: %[[C7:.*]] = arith.constant 7 : i32
// CHECK: %[[MAX_MANTISSA:.*]] = arith.cmpi eq, %{{.*}}, %[[C7]] : i32
// CHECK: %[[IS_NAN:.*]] = arith.andi %[[TOP]], %[[MAX_MANTISSA]] : i1
// CHECK: %[[SPECIAL:.*]] = arith.select %[[IS_NAN]], %[[NAN]], %[[REAL]] : f32
// CHECK-NOT: 0x7F800000
// CHECK: arith.mulf %[[SPECIAL]], %{{.*}} : f32
func.func @minifloat_e4m3_ocp(%codes: tensor<2x8xi8>, %scales: tensor<2x1xf32>) -> tensor<2x8xf32> {
  %w = qnt.dequant #qnt.minifloat<exponent_bits = 4, mantissa_bits = 3, special = ocp>(%codes, %scales) : (tensor<2x8xi8>, tensor<2x1xf32>) -> tensor<2x8xf32>
  return %w : tensor<2x8xf32>
}

// -----

// OCP E5M2: bias 15 (rebias 112); the top exponent is +-Inf with mantissa 0,
// NaN otherwise.
// CHECK-LABEL: func.func @minifloat_e5m2_ocp
// CHECK: arith.constant 112 : i32
// CHECK: arith.bitcast %{{.*}} : i32 to f32
// CHECK: %[[SUBNORMAL:.*]] = arith.select
// CHECK: %[[REAL:.*]] = arith.select %{{.*}}, %[[SUBNORMAL]], %{{.*}} : f32
// CHECK: %[[C31:.*]] = arith.constant 31 : i32
// CHECK: %[[TOP:.*]] = arith.cmpi eq, %{{.*}}, %[[C31]] : i32
// CHECK-DAG: %[[NAN:.*]] = arith.constant 0x7FC00000 : f32
// CHECK-DAG: %[[INF:.*]] = arith.constant 0x7F800000 : f32
// CHECK-DAG: %[[NEG_INF:.*]] = arith.constant 0xFF800000 : f32
// CHECK: %[[SIGNED_INF:.*]] = arith.select %{{.*}}, %[[NEG_INF]], %[[INF]] : f32
// CHECK: %[[INF_OR_NAN:.*]] = arith.select %{{.*}}, %[[SIGNED_INF]], %[[NAN]] : f32
// CHECK: %[[SPECIAL:.*]] = arith.select %[[TOP]], %[[INF_OR_NAN]], %[[REAL]] : f32
// CHECK: arith.mulf %[[SPECIAL]], %{{.*}} : f32
func.func @minifloat_e5m2_ocp(%codes: tensor<2x8xi8>, %scales: tensor<2x1xf32>) -> tensor<2x8xf32> {
  %w = qnt.dequant #qnt.minifloat<exponent_bits = 5, mantissa_bits = 2, special = ocp>(%codes, %scales) : (tensor<2x8xi8>, tensor<2x1xf32>) -> tensor<2x8xf32>
  return %w : tensor<2x8xf32>
}

// -----

// Codebooks (2 codebooks of 4 codewords, group 4): for each codebook m the
// code at [n, k / 4, m] indexes codeword [m, code, k % 4]; the sum is scaled
// per row.
// CHECK-LABEL: func.func @codebook_2x2
// CHECK-SAME: (%[[CODES:[^:]*]]: tensor<2x2x2xi8>, %[[BOOKS:[^:]*]]: tensor<2x4x4xf32>, %[[SCALES:[^:]*]]: tensor<2x1xf32>)
// CHECK: %[[ROW:.*]] = linalg.index 0
// CHECK: %[[COL:.*]] = linalg.index 1
// CHECK: %[[G:.*]] = arith.constant 4 : index
// CHECK: %[[GROUP:.*]] = arith.divui %[[COL]], %[[G]] : index
// CHECK: %[[WITHIN:.*]] = arith.remui %[[COL]], %[[G]] : index
// CHECK: %[[ZERO:.*]] = arith.constant 0.000000e+00 : f32
// CHECK: %[[M0:.*]] = arith.constant 0 : index
// CHECK: %[[CODE0_I8:.*]] = tensor.extract %[[CODES]][%[[ROW]], %[[GROUP]], %[[M0]]] : tensor<2x2x2xi8>
// CHECK: %[[CODE0_I32:.*]] = arith.extui %[[CODE0_I8]] : i8 to i32
// CHECK: %[[CODE0:.*]] = arith.index_castui %[[CODE0_I32]] : i32 to index
// CHECK: %[[WORD0:.*]] = tensor.extract %[[BOOKS]][%[[M0]], %[[CODE0]], %[[WITHIN]]] : tensor<2x4x4xf32>
// CHECK: %[[SUM0:.*]] = arith.addf %[[ZERO]], %[[WORD0]] : f32
// CHECK: %[[M1:.*]] = arith.constant 1 : index
// CHECK: %[[CODE1_I8:.*]] = tensor.extract %[[CODES]][%[[ROW]], %[[GROUP]], %[[M1]]] : tensor<2x2x2xi8>
// CHECK: %[[CODE1_I32:.*]] = arith.extui %[[CODE1_I8]] : i8 to i32
// CHECK: %[[CODE1:.*]] = arith.index_castui %[[CODE1_I32]] : i32 to index
// CHECK: %[[WORD1:.*]] = tensor.extract %[[BOOKS]][%[[M1]], %[[CODE1]], %[[WITHIN]]] : tensor<2x4x4xf32>
// CHECK: %[[SUM1:.*]] = arith.addf %[[SUM0]], %[[WORD1]] : f32
// CHECK: %[[SCALE:.*]] = tensor.extract %[[SCALES]][%[[ROW]], %{{.*}}] : tensor<2x1xf32>
// CHECK: %[[VALUE:.*]] = arith.mulf %[[SUM1]], %[[SCALE]] : f32
// CHECK: linalg.yield %[[VALUE]]
func.func @codebook_2x2(%codes: tensor<2x2x2xi8>, %books: tensor<2x4x4xf32>, %scales: tensor<2x1xf32>) -> tensor<2x8xf32> {
  %w = qnt.dequant #qnt.codebook<num_codebooks = 2, code_bits = 2, group_size = 4>(%codes, %books, %scales) : (tensor<2x2x2xi8>, tensor<2x4x4xf32>, tensor<2x1xf32>) -> tensor<2x8xf32>
  return %w : tensor<2x8xf32>
}

// -----

// AQLM 1x16: i16 codes are zero-extended (unsigned indices up to 65535).
// CHECK-LABEL: func.func @codebook_1x16
// CHECK: %[[CODE16:.*]] = tensor.extract %{{.*}} : tensor<2x1x1xi16>
// CHECK: %[[CODE32:.*]] = arith.extui %[[CODE16]] : i16 to i32
// CHECK: %[[CODE:.*]] = arith.index_castui %[[CODE32]] : i32 to index
// CHECK: tensor.extract %{{.*}}[%{{.*}}, %[[CODE]], %{{.*}}] : tensor<1x65536x8xf32>
func.func @codebook_1x16(%codes: tensor<2x1x1xi16>, %books: tensor<1x65536x8xf32>, %scales: tensor<2x1xf32>) -> tensor<2x8xf32> {
  %w = qnt.dequant #qnt.codebook<num_codebooks = 1, code_bits = 16, group_size = 8>(%codes, %books, %scales) : (tensor<2x1x1xi16>, tensor<1x65536x8xf32>, tensor<2x1xf32>) -> tensor<2x8xf32>
  return %w : tensor<2x8xf32>
}

// -----

// Binary with offsets: bit k of the sign bitstream selects +1 or -1, times
// alpha, plus mu.
// CHECK-LABEL: func.func @binary_asymmetric
// CHECK-SAME: (%[[SIGNS:[^:]*]]: tensor<2x1xi8>, %[[SCALES:[^:]*]]: tensor<2x1xf32>, %[[OFFSETS:[^:]*]]: tensor<2x1xf32>)
// CHECK: %[[ROW:.*]] = linalg.index 0
// CHECK: tensor.extract %[[SIGNS]][%[[ROW]], %{{.*}}] : tensor<2x1xi8>
// CHECK: %[[SHIFTED:.*]] = arith.shrui
// CHECK: %[[ONE_BIT:.*]] = arith.constant 1 : i32
// CHECK: %[[BIT:.*]] = arith.andi %[[SHIFTED]], %[[ONE_BIT]] : i32
// CHECK: %[[IS_SET:.*]] = arith.cmpi eq, %[[BIT]], %{{.*}} : i32
// CHECK-DAG: %[[MINUS_ONE:.*]] = arith.constant -1.000000e+00 : f32
// CHECK-DAG: %[[PLUS_ONE:.*]] = arith.constant 1.000000e+00 : f32
// CHECK: %[[SIGN:.*]] = arith.select %[[IS_SET]], %[[PLUS_ONE]], %[[MINUS_ONE]] : f32
// CHECK: %[[ALPHA:.*]] = tensor.extract %[[SCALES]][%[[ROW]], %{{.*}}] : tensor<2x1xf32>
// CHECK: %[[SCALED:.*]] = arith.mulf %[[ALPHA]], %[[SIGN]] : f32
// CHECK: %[[MU:.*]] = tensor.extract %[[OFFSETS]][%[[ROW]], %{{.*}}] : tensor<2x1xf32>
// CHECK: %[[VALUE:.*]] = arith.addf %[[SCALED]], %[[MU]] : f32
// CHECK: linalg.yield %[[VALUE]]
func.func @binary_asymmetric(%signs: tensor<2x1xi8>, %scales: tensor<2x1xf32>, %offsets: tensor<2x1xf32>) -> tensor<2x8xf32> {
  %w = qnt.dequant #qnt.binary<mode = asymmetric>(%signs, %scales, %offsets) : (tensor<2x1xi8>, tensor<2x1xf32>, tensor<2x1xf32>) -> tensor<2x8xf32>
  return %w : tensor<2x8xf32>
}

// -----

// Binary without offsets: no addf after the product.
// CHECK-LABEL: func.func @binary_symmetric
// CHECK: %[[SCALED:.*]] = arith.mulf
// CHECK-NOT: arith.addf
// CHECK: linalg.yield %[[SCALED]]
func.func @binary_symmetric(%signs: tensor<2x1xi8>, %scales: tensor<2x1xf32>) -> tensor<2x8xf32> {
  %w = qnt.dequant #qnt.binary<>(%signs, %scales) : (tensor<2x1xi8>, tensor<2x1xf32>) -> tensor<2x8xf32>
  return %w : tensor<2x8xf32>
}

// -----

// Two bit-planes per tensor: bit k % 32 of word [p, n, k / 32] adds
// plane_scales[p] when set; then the offset is added.
// CHECK-LABEL: func.func @bitplanes_2
// CHECK-SAME: (%[[PLANES:[^:]*]]: tensor<2x2x1xi32>, %[[PLANE_SCALES:[^:]*]]: tensor<2x1x1xf32>, %[[OFFSETS:[^:]*]]: tensor<1x1xf32>)
// CHECK: %[[ROW:.*]] = linalg.index 0
// CHECK: %[[COL:.*]] = linalg.index 1
// CHECK: %[[WORD_INDEX:.*]] = arith.divui %[[COL]], %{{.*}} : index
// CHECK: %[[BIT_INDEX:.*]] = arith.remui %[[COL]], %{{.*}} : index
// CHECK: %[[SHIFT:.*]] = arith.index_castui %[[BIT_INDEX]] : index to i32
// CHECK: %[[ZERO:.*]] = arith.constant 0.000000e+00 : f32
// CHECK: %[[P0:.*]] = arith.constant 0 : index
// CHECK: %[[WORD0:.*]] = tensor.extract %[[PLANES]][%[[P0]], %[[ROW]], %[[WORD_INDEX]]] : tensor<2x2x1xi32>
// CHECK: %[[SHIFTED0:.*]] = arith.shrui %[[WORD0]], %[[SHIFT]] : i32
// CHECK: %[[BIT0:.*]] = arith.andi %[[SHIFTED0]], %{{.*}} : i32
// CHECK: %[[PS0:.*]] = tensor.extract %[[PLANE_SCALES]][%[[P0]], %{{.*}}, %{{.*}}] : tensor<2x1x1xf32>
// CHECK: %[[SET0:.*]] = arith.cmpi eq, %[[BIT0]], %{{.*}} : i32
// CHECK: %[[TERM0:.*]] = arith.select %[[SET0]], %[[PS0]], %[[ZERO]] : f32
// CHECK: %[[SUM0:.*]] = arith.addf %[[ZERO]], %[[TERM0]] : f32
// CHECK: %[[P1:.*]] = arith.constant 1 : index
// CHECK: tensor.extract %[[PLANES]][%[[P1]], %[[ROW]], %[[WORD_INDEX]]] : tensor<2x2x1xi32>
// CHECK: %[[TERM1:.*]] = arith.select %{{.*}}, %{{.*}}, %[[ZERO]] : f32
// CHECK: %[[SUM1:.*]] = arith.addf %[[SUM0]], %[[TERM1]] : f32
// CHECK: %[[OFFSET:.*]] = tensor.extract %[[OFFSETS]][%{{.*}}, %{{.*}}] : tensor<1x1xf32>
// CHECK: %[[VALUE:.*]] = arith.addf %[[SUM1]], %[[OFFSET]] : f32
// CHECK: linalg.yield %[[VALUE]]
func.func @bitplanes_2(%planes: tensor<2x2x1xi32>, %ps: tensor<2x1x1xf32>, %off: tensor<1x1xf32>) -> tensor<2x8xf32> {
  %w = qnt.dequant #qnt.bitplanes<planes = 2, granularity = per_tensor>(%planes, %ps, %off) : (tensor<2x2x1xi32>, tensor<2x1x1xf32>, tensor<1x1xf32>) -> tensor<2x8xf32>
  return %w : tensor<2x8xf32>
}

// -----

// Salient split: channel_map[k] >= 0 selects the salient part at column
// map[k] (scf.if then-branch, reading the salient components), otherwise the
// rest part at column -1 - map[k] (else-branch, reading the rest components).
// The column is clamped to its part's last (1 of 2 salient, 5 of 6 rest), so
// that a lying map cannot read past the part.
// CHECK-LABEL: func.func @salient
// CHECK-SAME: (%[[MAP:[^:]*]]: tensor<8xi32>, %[[CODES:[^:]*]]: tensor<2x2xi8>, %[[SCALES:[^:]*]]: tensor<2x1xf32>, %[[SIGNS:[^:]*]]: tensor<2x1xi8>, %[[ALPHA:[^:]*]]: tensor<1x1xf32>)
// CHECK: %[[ROW:.*]] = linalg.index 0
// CHECK: %[[COL:.*]] = linalg.index 1
// CHECK: %[[ENTRY:.*]] = tensor.extract %[[MAP]][%[[COL]]] : tensor<8xi32>
// CHECK: %[[C0:.*]] = arith.constant 0 : i32
// CHECK: %[[IS_SALIENT:.*]] = arith.cmpi sge, %[[ENTRY]], %[[C0]] : i32
// CHECK: %[[MINUS_ONE:.*]] = arith.constant -1 : i32
// CHECK: %[[REST_COLUMN:.*]] = arith.subi %[[MINUS_ONE]], %[[ENTRY]] : i32
// CHECK: %[[PART_COLUMN_I32:.*]] = arith.select %[[IS_SALIENT]], %[[ENTRY]], %[[REST_COLUMN]] : i32
// CHECK: %[[COLUMN:.*]] = arith.index_castui %[[PART_COLUMN_I32]] : i32 to index
// CHECK: %[[LAST_SALIENT:.*]] = arith.constant 1 : index
// CHECK: %[[LAST_REST:.*]] = arith.constant 5 : index
// CHECK: %[[LAST:.*]] = arith.select %[[IS_SALIENT]], %[[LAST_SALIENT]], %[[LAST_REST]] : index
// CHECK: %[[PART_COLUMN:.*]] = arith.minui %[[COLUMN]], %[[LAST]] : index
// CHECK: %[[VALUE:.*]] = scf.if %[[IS_SALIENT]] -> (f32) {
// CHECK: tensor.extract %[[CODES]][%[[ROW]], %[[PART_COLUMN]]] : tensor<2x2xi8>
// CHECK: arith.constant 128 : i32
// CHECK: tensor.extract %[[SCALES]][%[[ROW]], %{{.*}}] : tensor<2x1xf32>
// CHECK: scf.yield %{{.*}} : f32
// CHECK: } else {
// CHECK: arith.muli %[[PART_COLUMN]], %{{.*}} : index
// CHECK: tensor.extract %[[SIGNS]][%[[ROW]], %{{.*}}] : tensor<2x1xi8>
// CHECK: tensor.extract %[[ALPHA]][%{{.*}}, %{{.*}}] : tensor<1x1xf32>
// CHECK: scf.yield %{{.*}} : f32
// CHECK: }
// CHECK: linalg.yield %[[VALUE]] : f32
func.func @salient(%map: tensor<8xi32>, %codes: tensor<2x2xi8>, %scales: tensor<2x1xf32>, %signs: tensor<2x1xi8>, %alpha: tensor<1x1xf32>) -> tensor<2x8xf32> {
  %w = qnt.dequant #qnt.salient<num_salient = 2, salient = #qnt.uniform<bits = 8>, rest = #qnt.binary<granularity = per_tensor>>(%map, %codes, %scales, %signs, %alpha) : (tensor<8xi32>, tensor<2x2xi8>, tensor<2x1xf32>, tensor<2x1xi8>, tensor<1x1xf32>) -> tensor<2x8xf32>
  return %w : tensor<2x8xf32>
}

// -----

// qnt.matmul: the materialized f32 weight (a [N, K] generic), the f16 input
// widened to f32, a transpose-B linalg.matmul into a zero-filled f32
// accumulator, and the result rounded to f16.
// CHECK-DAG: #[[LHS:.*]] = affine_map<(d0, d1, d2) -> (d0, d2)>
// CHECK-DAG: #[[RHS_T:.*]] = affine_map<(d0, d1, d2) -> (d1, d2)>
// CHECK-DAG: #[[OUT:.*]] = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-LABEL: func.func @matmul_f16
// CHECK-SAME: (%[[X:[^:]*]]: tensor<3x8xf16>, %[[CODES:[^:]*]]: tensor<2x8xi8>, %[[SCALES:[^:]*]]: tensor<2x1xf32>)
// CHECK-NOT: qnt.matmul
// CHECK: %[[W:.*]] = linalg.generic {{.*}} outs(%{{.*}} : tensor<2x8xf32>)
// CHECK: tensor.extract %[[CODES]]
// CHECK: } -> tensor<2x8xf32>
// CHECK: %[[X32:.*]] = linalg.generic {{.*}} ins(%[[X]] : tensor<3x8xf16>) outs(%{{.*}} : tensor<3x8xf32>)
// CHECK: arith.extf %{{.*}} : f16 to f32
// CHECK: %[[ZERO:.*]] = arith.constant 0.000000e+00 : f32
// CHECK: %[[ACC:.*]] = linalg.fill ins(%[[ZERO]] : f32) outs(%{{.*}} : tensor<3x2xf32>)
// CHECK: %[[Y32:.*]] = linalg.matmul indexing_maps = [#[[LHS]], #[[RHS_T]], #[[OUT]]] ins(%[[X32]], %[[W]] : tensor<3x8xf32>, tensor<2x8xf32>) outs(%[[ACC]] : tensor<3x2xf32>)
// CHECK: %[[Y:.*]] = linalg.generic {{.*}} ins(%[[Y32]] : tensor<3x2xf32>) outs(%{{.*}} : tensor<3x2xf16>)
// CHECK: arith.truncf %{{.*}} : f32 to f16
// CHECK: return %[[Y]] : tensor<3x2xf16>
func.func @matmul_f16(%x: tensor<3x8xf16>, %codes: tensor<2x8xi8>, %scales: tensor<2x1xf32>) -> tensor<3x2xf16> {
  %y = qnt.matmul %x, #qnt.uniform<bits = 8>(%codes, %scales) : (tensor<3x8xf16>, tensor<2x8xi8>, tensor<2x1xf32>) -> tensor<3x2xf16>
  return %y : tensor<3x2xf16>
}

// -----

// qnt.matmul in f32: no conversions around the matmul.
// CHECK-LABEL: func.func @matmul_f32
// CHECK-SAME: (%[[X:[^:]*]]: tensor<3x8xf32>
// CHECK: %[[W:.*]] = linalg.generic
// CHECK: %[[Y:.*]] = linalg.matmul indexing_maps = [#{{.*}}, #{{.*}}, #{{.*}}] ins(%[[X]], %[[W]] : tensor<3x8xf32>, tensor<2x8xf32>)
// CHECK-NEXT: return %[[Y]]
func.func @matmul_f32(%x: tensor<3x8xf32>, %codes: tensor<2x4xi8>, %scales: tensor<2x2xf32>) -> tensor<3x2xf32> {
  %y = qnt.matmul %x, #qnt.minifloat<exponent_bits = 2, mantissa_bits = 1, granularity = per_group, group_size = 4>(%codes, %scales) : (tensor<3x8xf32>, tensor<2x4xi8>, tensor<2x2xf32>) -> tensor<3x2xf32>
  return %y : tensor<3x2xf32>
}

// -----

// qnt.smooth: x[m, k] / factors[k].
// CHECK-DAG: #[[ID:.*]] = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-DAG: #[[LAST:.*]] = affine_map<(d0, d1) -> (d1)>
// CHECK-LABEL: func.func @smooth
// CHECK-SAME: (%[[X:[^:]*]]: tensor<4x8xf32>, %[[S:[^:]*]]: tensor<8xf32>)
// CHECK: %[[Y:.*]] = linalg.generic {indexing_maps = [#[[ID]], #[[LAST]], #[[ID]]], iterator_types = ["parallel", "parallel"]} ins(%[[X]], %[[S]] : tensor<4x8xf32>, tensor<8xf32>)
// CHECK: ^bb0(%[[XI:.*]]: f32, %[[SI:.*]]: f32, %{{.*}}: f32):
// CHECK: %[[Q:.*]] = arith.divf %[[XI]], %[[SI]] : f32
// CHECK: linalg.yield %[[Q]]
// CHECK: return %[[Y]]
func.func @smooth(%x: tensor<4x8xf32>, %s: tensor<8xf32>) -> tensor<4x8xf32> {
  %y = qnt.smooth %x, %s : tensor<4x8xf32>, tensor<8xf32>
  return %y : tensor<4x8xf32>
}

// -----

// qnt.lowrank_add: (x v) [3, 4] with a plain matmul, times u^T with a
// transpose-B matmul, added to acc.
// CHECK-LABEL: func.func @lowrank_add
// CHECK-SAME: (%[[ACC:[^:]*]]: tensor<3x2xf32>, %[[X:[^:]*]]: tensor<3x8xf32>, %[[U:[^:]*]]: tensor<2x4xf32>, %[[V:[^:]*]]: tensor<8x4xf32>)
// CHECK: %[[ZERO_XV:.*]] = linalg.fill {{.*}} -> tensor<3x4xf32>
// CHECK: %[[XV:.*]] = linalg.matmul ins(%[[X]], %[[V]] : tensor<3x8xf32>, tensor<8x4xf32>) outs(%[[ZERO_XV]] : tensor<3x4xf32>)
// CHECK: %[[ZERO_C:.*]] = linalg.fill {{.*}} -> tensor<3x2xf32>
// CHECK: %[[C:.*]] = linalg.matmul indexing_maps = [#{{.*}}, #{{.*}}, #{{.*}}] ins(%[[XV]], %[[U]] : tensor<3x4xf32>, tensor<2x4xf32>) outs(%[[ZERO_C]] : tensor<3x2xf32>)
// CHECK: %[[SUM:.*]] = linalg.add ins(%[[ACC]], %[[C]] : tensor<3x2xf32>, tensor<3x2xf32>)
// CHECK: return %[[SUM]]
func.func @lowrank_add(%acc: tensor<3x2xf32>, %x: tensor<3x8xf32>, %u: tensor<2x4xf32>, %v: tensor<8x4xf32>) -> tensor<3x2xf32> {
  %y = qnt.lowrank_add %acc, %x, %u, %v : tensor<3x2xf32>, tensor<3x8xf32>, tensor<2x4xf32>, tensor<8x4xf32>
  return %y : tensor<3x2xf32>
}

// -----

// Dynamic rows (tokens), as in an imported model: the intermediate and the
// correction take their row count from the input and the accumulator.
// CHECK-LABEL: func.func @lowrank_add_dynamic
// CHECK-SAME: (%[[ACC:[^:]*]]: tensor<?x2xf32>, %[[X:[^:]*]]: tensor<?x8xf32>, %[[U:[^:]*]]: tensor<2x4xf32>, %[[V:[^:]*]]: tensor<8x4xf32>)
// CHECK: %[[ROWS:.*]] = tensor.dim %[[X]], %{{.*}} : tensor<?x8xf32>
// CHECK: tensor.empty(%[[ROWS]]) : tensor<?x4xf32>
// CHECK: %[[XV:.*]] = linalg.matmul ins(%[[X]], %[[V]] : tensor<?x8xf32>, tensor<8x4xf32>)
// CHECK: linalg.matmul indexing_maps = [#{{.*}}, #{{.*}}, #{{.*}}] ins(%[[XV]], %[[U]] : tensor<?x4xf32>, tensor<2x4xf32>) {{.*}} -> tensor<?x2xf32>
// CHECK: linalg.add ins(%[[ACC]], %{{.*}} : tensor<?x2xf32>, tensor<?x2xf32>)
func.func @lowrank_add_dynamic(%acc: tensor<?x2xf32>, %x: tensor<?x8xf32>, %u: tensor<2x4xf32>, %v: tensor<8x4xf32>) -> tensor<?x2xf32> {
  %y = qnt.lowrank_add %acc, %x, %u, %v : tensor<?x2xf32>, tensor<?x8xf32>, tensor<2x4xf32>, tensor<8x4xf32>
  return %y : tensor<?x2xf32>
}

// -----

// fake_quant per token, 8 bits: a reduction of |x| with max over the last
// dimension into a [4] tensor, then per element s = (absmax == 0 ? 1 :
// absmax / 127), roundeven(x / s) clamped to [-128, 127], times s.
// CHECK-DAG: #[[ID:.*]] = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-DAG: #[[ROW_MAP:.*]] = affine_map<(d0, d1) -> (d0)>
// CHECK-LABEL: func.func @fake_quant_per_token
// CHECK-SAME: (%[[X:[^:]*]]: tensor<4x8xf32>)
// CHECK: %[[INIT:.*]] = linalg.fill ins(%{{.*}} : f32) outs(%{{.*}} : tensor<4xf32>)
// CHECK: %[[ABSMAX:.*]] = linalg.generic {indexing_maps = [#[[ID]], #[[ROW_MAP]]], iterator_types = ["parallel", "reduction"]} ins(%[[X]] : tensor<4x8xf32>) outs(%[[INIT]] : tensor<4xf32>)
// CHECK: ^bb0(%[[IN:.*]]: f32, %[[RUNNING:.*]]: f32):
// CHECK: %[[MAG:.*]] = math.absf %[[IN]] : f32
// CHECK: %[[MAX:.*]] = arith.maximumf %[[RUNNING]], %[[MAG]] : f32
// CHECK: linalg.yield %[[MAX]]
// CHECK: %[[Y:.*]] = linalg.generic {indexing_maps = [#[[ID]], #[[ROW_MAP]], #[[ID]]], iterator_types = ["parallel", "parallel"]} ins(%[[X]], %[[ABSMAX]] : tensor<4x8xf32>, tensor<4xf32>)
// CHECK: ^bb0(%[[XI:.*]]: f32, %[[AI:.*]]: f32, %{{.*}}: f32):
// CHECK-DAG: %[[ZERO:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-DAG: %[[ONE:.*]] = arith.constant 1.000000e+00 : f32
// CHECK-DAG: %[[QMAX:.*]] = arith.constant 1.270000e+02 : f32
// CHECK: %[[IS_ZERO:.*]] = arith.cmpf oeq, %[[AI]], %[[ZERO]] : f32
// CHECK: %[[RAW_SCALE:.*]] = arith.divf %[[AI]], %[[QMAX]] : f32
// CHECK: %[[SCALE:.*]] = arith.select %[[IS_ZERO]], %[[ONE]], %[[RAW_SCALE]] : f32
// CHECK: %[[RATIO:.*]] = arith.divf %[[XI]], %[[SCALE]] : f32
// CHECK: %[[ROUNDED:.*]] = math.roundeven %[[RATIO]] : f32
// CHECK-DAG: %[[LO:.*]] = arith.constant -1.280000e+02 : f32
// CHECK-DAG: %[[HI:.*]] = arith.constant 1.270000e+02 : f32
// CHECK: %[[ABOVE:.*]] = arith.maximumf %[[ROUNDED]], %[[LO]] : f32
// CHECK: %[[CLAMPED:.*]] = arith.minimumf %[[ABOVE]], %[[HI]] : f32
// CHECK: %[[DQ:.*]] = arith.mulf %[[CLAMPED]], %[[SCALE]] : f32
// CHECK: linalg.yield %[[DQ]]
// CHECK: return %[[Y]]
func.func @fake_quant_per_token(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %y = qnt.fake_quant %x {bits = 8, granularity = #qnt<act_granularity per_token>} : tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

// fake_quant per token with a clip ratio: extracted once, it multiplies
// each token's run-time scale before the division.
// CHECK-LABEL: func.func @fake_quant_clip
// CHECK-SAME: (%[[X:[^:]*]]: tensor<4x8xf32>, %[[C:[^:]*]]: tensor<1xf32>)
// CHECK: %[[CLIP:.*]] = tensor.extract %[[C]][%{{.*}}] : tensor<1xf32>
// CHECK: %[[ABSMAX:.*]] = linalg.generic {{.*}}iterator_types = ["parallel", "reduction"]
// CHECK: linalg.generic {{.*}} ins(%[[X]], %[[ABSMAX]] : tensor<4x8xf32>, tensor<4xf32>)
// CHECK: ^bb0(%[[XI:.*]]: f32, %[[AI:.*]]: f32, %{{.*}}: f32):
// CHECK: %[[RAW:.*]] = arith.select
// CHECK: %[[SCALE:.*]] = arith.mulf %[[RAW]], %[[CLIP]] : f32
// CHECK: arith.divf %[[XI]], %[[SCALE]] : f32
// CHECK: math.roundeven
// CHECK: arith.mulf %{{.*}}, %[[SCALE]] : f32
func.func @fake_quant_clip(%x: tensor<4x8xf32>, %c: tensor<1xf32>) -> tensor<4x8xf32> {
  %y = qnt.fake_quant %x clip(%c : tensor<1xf32>) {bits = 8, granularity = #qnt<act_granularity per_token>} : tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

// fake_quant with a static scale, 4 bits: the scale is extracted once, no
// reduction, clamp to [-8, 7].
// CHECK-LABEL: func.func @fake_quant_static_scale
// CHECK-SAME: (%[[X:[^:]*]]: tensor<4x8xf32>, %[[S:[^:]*]]: tensor<1xf32>)
// CHECK: %[[C0:.*]] = arith.constant 0 : index
// CHECK: %[[SCALE:.*]] = tensor.extract %[[S]][%[[C0]]] : tensor<1xf32>
// CHECK-NOT: reduction
// CHECK-NOT: math.absf
// CHECK: linalg.generic {{.*}} ins(%[[X]] : tensor<4x8xf32>)
// CHECK: %[[RATIO:.*]] = arith.divf %{{.*}}, %[[SCALE]] : f32
// CHECK: %[[ROUNDED:.*]] = math.roundeven %[[RATIO]] : f32
// CHECK-DAG: %[[LO:.*]] = arith.constant -8.000000e+00 : f32
// CHECK-DAG: %[[HI:.*]] = arith.constant 7.000000e+00 : f32
// CHECK: %[[ABOVE:.*]] = arith.maximumf %[[ROUNDED]], %[[LO]] : f32
// CHECK: %[[CLAMPED:.*]] = arith.minimumf %[[ABOVE]], %[[HI]] : f32
// CHECK: arith.mulf %[[CLAMPED]], %[[SCALE]] : f32
func.func @fake_quant_static_scale(%x: tensor<4x8xf32>, %s: tensor<1xf32>) -> tensor<4x8xf32> {
  %y = qnt.fake_quant %x scale(%s : tensor<1xf32>) {bits = 4, granularity = #qnt<act_granularity per_tensor>} : tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

// fake_quant per tensor with noise, in f16: widen input and noise to f32, add
// noise[k], reduce |x| over both dimensions into a 0-d tensor, quantize, and
// round the result back to f16.
// CHECK-DAG: #[[ID:.*]] = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-DAG: #[[LAST:.*]] = affine_map<(d0, d1) -> (d1)>
// CHECK-DAG: #[[SCALAR:.*]] = affine_map<(d0, d1) -> ()>
// CHECK-LABEL: func.func @fake_quant_noise_f16
// CHECK-SAME: (%[[X:[^:]*]]: tensor<4x8xf16>, %[[N:[^:]*]]: tensor<8xf16>)
// CHECK: %[[X32:.*]] = linalg.generic {{.*}} ins(%[[X]] : tensor<4x8xf16>) outs(%{{.*}} : tensor<4x8xf32>)
// CHECK: %[[N32:.*]] = linalg.generic {{.*}} ins(%[[N]] : tensor<8xf16>) outs(%{{.*}} : tensor<8xf32>)
// CHECK: %[[NOISY:.*]] = linalg.generic {indexing_maps = [#[[ID]], #[[LAST]], #[[ID]]], {{.*}} ins(%[[X32]], %[[N32]] : tensor<4x8xf32>, tensor<8xf32>)
// CHECK: arith.addf
// CHECK: %[[ABSMAX:.*]] = linalg.generic {indexing_maps = [#[[ID]], #[[SCALAR]]], iterator_types = ["reduction", "reduction"]} ins(%[[NOISY]] : tensor<4x8xf32>) outs(%{{.*}} : tensor<f32>)
// CHECK: math.absf
// CHECK: %[[A:.*]] = tensor.extract %[[ABSMAX]][] : tensor<f32>
// CHECK: %[[SCALE:.*]] = arith.select
// CHECK: %[[Q:.*]] = linalg.generic {{.*}} ins(%[[NOISY]] : tensor<4x8xf32>)
// CHECK: arith.divf %{{.*}}, %[[SCALE]] : f32
// CHECK: math.roundeven
// CHECK: %[[Y:.*]] = linalg.generic {{.*}} ins(%[[Q]] : tensor<4x8xf32>) outs(%{{.*}} : tensor<4x8xf16>)
// CHECK: arith.truncf %{{.*}} : f32 to f16
// CHECK: return %[[Y]]
func.func @fake_quant_noise_f16(%x: tensor<4x8xf16>, %n: tensor<8xf16>) -> tensor<4x8xf16> {
  %y = qnt.fake_quant %x noise(%n : tensor<8xf16>) {bits = 8, granularity = #qnt<act_granularity per_tensor>} : tensor<4x8xf16>
  return %y : tensor<4x8xf16>
}

// -----

// qnt.param and qnt.observe are not compute ops: left in place.
// CHECK-LABEL: func.func @param_and_observe_kept
// CHECK: %[[Y:.*]] = qnt.observe %{{.*}} as "x" stats ["absmax"] : tensor<4x8xf32>
// CHECK: %[[W:.*]] = qnt.param "w" : tensor<2x8xf32>
// CHECK-NOT: linalg.generic
// CHECK: return %[[Y]], %[[W]]
func.func @param_and_observe_kept(%x: tensor<4x8xf32>) -> (tensor<4x8xf32>, tensor<2x8xf32>) {
  %y = qnt.observe %x as "x" stats ["absmax"] : tensor<4x8xf32>
  %w = qnt.param "w" : tensor<2x8xf32>
  return %y, %w : tensor<4x8xf32>, tensor<2x8xf32>
}

// -----

// fake_quant per token with a dynamic token count (an imported model's
// activations): the per-token maxima and the result take their row count
// from the input.
// CHECK-LABEL: func.func @fake_quant_dynamic_tokens
// CHECK-SAME: (%[[X:[^:]*]]: tensor<?x8xf32>)
// CHECK: %[[ROWS:.*]] = tensor.dim %[[X]], %{{.*}} : tensor<?x8xf32>
// CHECK: tensor.empty(%[[ROWS]]) : tensor<?xf32>
// CHECK: linalg.generic {{.*}} ins(%[[X]] : tensor<?x8xf32>) outs(%{{.*}} : tensor<?xf32>)
// CHECK: %[[Y:.*]] = linalg.generic {{.*}} ins(%[[X]], %{{.*}} : tensor<?x8xf32>, tensor<?xf32>) outs(%{{.*}} : tensor<?x8xf32>)
// CHECK: return %[[Y]]
func.func @fake_quant_dynamic_tokens(%x: tensor<?x8xf32>) -> tensor<?x8xf32> {
  %y = qnt.fake_quant %x {bits = 8, granularity = #qnt<act_granularity per_token>} : tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}
