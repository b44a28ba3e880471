// qnt-rtn on constant weights. Every RUN line quantizes every case with one
// option set; each case is checked under the prefix of the option set it was
// designed for, with scales, zero points and packed codes computed by hand
// (docs/PackedLayouts.md): asymmetric s = (max(w,0) - min(w,0)) / (2^b - 1),
// z = rhe(-min / s), u = rhe(w / s) + z; symmetric s = absmax / (2^(b-1) - 1),
// u = rhe(w / s) + 2^(b-1); codes packed LSB first (low nibble = even element),
// bytes printed as signed i8. COMMON checks cases that no option set changes.
// qnt.param weights are in qnt-rtn-params.mlir, errors in qnt-rtn-errors.mlir.

// RUN: quant-opt %s -split-input-file --qnt-rtn="bits=4 granularity=per-channel" | FileCheck %s --check-prefixes=ASYM4,COMMON
// RUN: quant-opt %s -split-input-file --qnt-rtn="bits=8 symmetric=true granularity=per-channel" | FileCheck %s --check-prefixes=SYM8,COMMON
// RUN: quant-opt %s -split-input-file --qnt-rtn="bits=4 symmetric=1 group-size=4" | FileCheck %s --check-prefixes=GROUP,COMMON
// RUN: quant-opt %s -split-input-file --qnt-rtn="bits=3 granularity=per-tensor" | FileCheck %s --check-prefixes=TENSOR,COMMON
// RUN: quant-opt %s -split-input-file --qnt-rtn="format=e2m1 group-size=4" | FileCheck %s --check-prefixes=E2M1,COMMON
// RUN: quant-opt %s -split-input-file --qnt-rtn="format=e4m3 granularity=per-channel" | FileCheck %s --check-prefixes=E4M3,COMMON

// int4 asymmetric per channel on a transpose-B matmul (weight [N, K] = [2, 8]).
// Row 0: min -1, max 2.75, s = 3.75/15 = 0.25, z = 4; w/s = -4 0 0.5 1.5 2.5 11 -2 4
// rounds half to even to -4 0 0 2 2 11 -2 4, u = 0 4 4 6 6 15 2 8 = 0x40 0x64 0xF6 0x82.
// Row 1: min 0, max 7.5, s = 0.5, z = 0, u = 0 2 4 6 8 10 12 15 = 0x20 0x64 0xA8 0xFC.
// COMMON-LABEL: func.func @int4_asym_channel
// COMMON-NOT: arith.constant dense<{{.*}}> : tensor<2x8xf32>
// ASYM4-SAME: (%[[X:[^:]*]]: tensor<3x8xf32>
// ASYM4-DAG: %[[CODES:.*]] = arith.constant dense<{{\[}}[64, 100, -10, -126], [32, 100, -88, -4]]> : tensor<2x4xi8>
// ASYM4-DAG: %[[SCALE:.*]] = arith.constant dense<{{\[}}[2.500000e-01], [5.000000e-01]]> : tensor<2x1xf32>
// ASYM4-DAG: %[[ZERO_POINT:.*]] = arith.constant dense<{{\[}}[4], [0]]> : tensor<2x1xi8>
// ASYM4: %[[W:.*]] = qnt.dequant #qnt.uniform<bits = 4, mode = asymmetric>(%[[CODES]], %[[SCALE]], %[[ZERO_POINT]]) : (tensor<2x4xi8>, tensor<2x1xf32>, tensor<2x1xi8>) -> tensor<2x8xf32>
// ASYM4: linalg.matmul indexing_maps = [#{{.*}}, #{{.*}}, #{{.*}}] ins(%[[X]], %[[W]] : tensor<3x8xf32>, tensor<2x8xf32>)
// ASYM4-NOT: linalg.transpose
func.func @int4_asym_channel(%x: tensor<3x8xf32>) -> tensor<3x2xf32> {
  %w = arith.constant dense<[[-1.0, 0.0, 0.125, 0.375, 0.625, 2.75, -0.5, 1.0],
                             [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.5]]> : tensor<2x8xf32>
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<3x2xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%e : tensor<3x2xf32>) -> tensor<3x2xf32>
  %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                      affine_map<(m, n, k) -> (n, k)>,
                                      affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %w : tensor<3x8xf32>, tensor<2x8xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  return %y : tensor<3x2xf32>
}

// -----

// int8 symmetric per channel on a plain matmul: the [K, N] = [4, 2] weight is
// quantized as its [2, 4] transpose, and a linalg.transpose of the dequant
// restores [4, 2]. Row 0 = [127, -64, 0.5, 1.5]: s = 1, q = 127 -64 0 2,
// u = q + 128 = 255 64 128 130. Row 1 = [-3.96875, 0.015625, 0.046875, 1]:
// s = 3.96875/127 = 1/32, q = -127 0 2 32, u = 1 128 130 160.
// COMMON-LABEL: func.func @int8_sym_channel_plain
// COMMON-NOT: arith.constant dense<{{.*}}> : tensor<4x2xf32>
// SYM8-SAME: (%[[X:[^:]*]]: tensor<3x4xf32>, %[[ACC:[^:]*]]: tensor<3x2xf32>)
// SYM8-DAG: %[[CODES:.*]] = arith.constant dense<{{\[}}[-1, 64, -128, -126], [1, -128, -126, -96]]> : tensor<2x4xi8>
// SYM8-DAG: %[[SCALE:.*]] = arith.constant dense<{{\[}}[1.000000e+00], [3.125000e-02]]> : tensor<2x1xf32>
// SYM8: %[[NK:.*]] = qnt.dequant #qnt.uniform<bits = 8>(%[[CODES]], %[[SCALE]]) : (tensor<2x4xi8>, tensor<2x1xf32>) -> tensor<2x4xf32>
// SYM8: %[[INIT:.*]] = tensor.empty() : tensor<4x2xf32>
// SYM8: %[[KN:.*]] = linalg.transpose ins(%[[NK]] : tensor<2x4xf32>) outs(%[[INIT]] : tensor<4x2xf32>) permutation = [1, 0]
// SYM8: linalg.matmul ins(%[[X]], %[[KN]] : tensor<3x4xf32>, tensor<4x2xf32>) outs(%[[ACC]] : tensor<3x2xf32>)
func.func @int8_sym_channel_plain(%x: tensor<3x4xf32>, %acc: tensor<3x2xf32>) -> tensor<3x2xf32> {
  %w = arith.constant dense<[[127.0, -3.96875], [-64.0, 0.015625], [0.5, 0.046875], [1.5, 1.0]]> : tensor<4x2xf32>
  %y = linalg.matmul ins(%x, %w : tensor<3x4xf32>, tensor<4x2xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  return %y : tensor<3x2xf32>
}

// -----

// int4 symmetric per group of 4 (scales [N, K/4] = [2, 2]), transpose-B.
// Row 0 group 0 [7, -3.5, 1, 0]: s = 7/7 = 1, q = 7 -4 1 0 (-3.5 ties to even
// -4), u = q + 8 = 15 4 9 8 = 0x4F 0x89. Group 1 [0.5, -1.75, 0.25, 0.125]:
// s = 0.25, q = 2 -7 1 0 (0.5 ties to 0), u = 10 1 9 8 = 0x1A 0x89.
// Row 1 group 0 is all zero: s = 1 (not 0), u = 8 8 8 8 = 0x88 0x88.
// Group 1 [-14, 14, 3, -1]: s = 2, q = -7 7 2 0 (1.5 -> 2, -0.5 -> -0),
// u = 1 15 10 8 = 0xF1 0x8A.
// COMMON-LABEL: func.func @int4_sym_group
// COMMON-NOT: arith.constant dense<{{.*}}> : tensor<2x8xf32>
// GROUP-DAG: %[[CODES:.*]] = arith.constant dense<{{\[}}[79, -119, 26, -119], [-120, -120, -15, -118]]> : tensor<2x4xi8>
// GROUP-DAG: %[[SCALE:.*]] = arith.constant dense<{{\[}}[1.000000e+00, 2.500000e-01], [1.000000e+00, 2.000000e+00]]> : tensor<2x2xf32>
// GROUP: qnt.dequant #qnt.uniform<bits = 4, granularity = per_group, group_size = 4>(%[[CODES]], %[[SCALE]]) : (tensor<2x4xi8>, tensor<2x2xf32>) -> tensor<2x8xf32>
func.func @int4_sym_group(%x: tensor<3x8xf32>, %acc: tensor<3x2xf32>) -> tensor<3x2xf32> {
  %w = arith.constant dense<[[7.0, -3.5, 1.0, 0.0, 0.5, -1.75, 0.25, 0.125],
                             [0.0, 0.0, 0.0, 0.0, -14.0, 14.0, 3.0, -1.0]]> : tensor<2x8xf32>
  %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                      affine_map<(m, n, k) -> (n, k)>,
                                      affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %w : tensor<3x8xf32>, tensor<2x8xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  return %y : tensor<3x2xf32>
}

// -----

// int3 asymmetric per tensor (one scale and zero point, [1, 1]), transpose-B.
// min -1.5, max 2: s = 3.5/7 = 0.5, z = rhe(3) = 3. Row 0 [-1.5, 2, 0.25, 0.75]:
// u = 0 7 3 5 (0.5 -> 0, 1.5 -> 2); row 1 [1, -0.5, 0, 1.25]: u = 5 2 3 5
// (2.5 -> 2). 3-bit codes straddle bytes: row 0 = 0 | 7<<3 | 3<<6 | 5<<9 =
// 0xAF8 = F8 0A, row 1 = 0xAD5 = D5 0A.
// COMMON-LABEL: func.func @int3_asym_tensor
// COMMON-NOT: arith.constant dense<{{.*}}> : tensor<2x4xf32>
// TENSOR-DAG: %[[CODES:.*]] = arith.constant dense<{{\[}}[-8, 10], [-43, 10]]> : tensor<2x2xi8>
// TENSOR-DAG: %[[SCALE:.*]] = arith.constant dense<5.000000e-01> : tensor<1x1xf32>
// TENSOR-DAG: %[[ZERO_POINT:.*]] = arith.constant dense<3> : tensor<1x1xi8>
// TENSOR: qnt.dequant #qnt.uniform<bits = 3, mode = asymmetric, granularity = per_tensor>(%[[CODES]], %[[SCALE]], %[[ZERO_POINT]]) : (tensor<2x2xi8>, tensor<1x1xf32>, tensor<1x1xi8>) -> tensor<2x4xf32>
func.func @int3_asym_tensor(%x: tensor<3x4xf32>, %acc: tensor<3x2xf32>) -> tensor<3x2xf32> {
  %w = arith.constant dense<[[-1.5, 2.0, 0.25, 0.75], [1.0, -0.5, 0.0, 1.25]]> : tensor<2x4xf32>
  %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                      affine_map<(m, n, k) -> (n, k)>,
                                      affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %w : tensor<3x4xf32>, tensor<2x4xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  return %y : tensor<3x2xf32>
}

// -----

// E2M1 per group of 4: s = absmax / 6, codes 0..7 = 0 0.5 1 1.5 2 3 4 6, +8
// for negatives, ties to the even code.
// Row 0 group 0 [12, -3, 1, 0.5]: s = 2, w/s = 6 -1.5 0.5 0.25 -> 7 0xB 1 0
// (0.25 ties to 0) = 0xB7 0x01. Group 1 [0.75, 1.5, -0.375, 0]: s = 0.25,
// w/s = 3 6 -1.5 0 -> 5 7 0xB 0 = 0x75 0x0B.
// Row 1 group 0 [-6, 6, 2.5, -5]: s = 1, -> 0xF 7 4 0xE (2.5 ties to 2,
// -5 ties to -4) = 0x7F 0xE4. Group 1 [3, 3, -3, 0]: s = 0.5 -> 7 7 0xF 0 =
// 0x77 0x0F.
// COMMON-LABEL: func.func @e2m1_group
// COMMON-NOT: arith.constant dense<{{.*}}> : tensor<2x8xf32>
// E2M1-DAG: %[[CODES:.*]] = arith.constant dense<{{\[}}[-73, 1, 117, 11], [127, -28, 119, 15]]> : tensor<2x4xi8>
// E2M1-DAG: %[[SCALE:.*]] = arith.constant dense<{{\[}}[2.000000e+00, 2.500000e-01], [1.000000e+00, 5.000000e-01]]> : tensor<2x2xf32>
// E2M1: qnt.dequant #qnt.minifloat<exponent_bits = 2, mantissa_bits = 1, granularity = per_group, group_size = 4>(%[[CODES]], %[[SCALE]]) : (tensor<2x4xi8>, tensor<2x2xf32>) -> tensor<2x8xf32>
func.func @e2m1_group(%x: tensor<3x8xf32>, %acc: tensor<3x2xf32>) -> tensor<3x2xf32> {
  %w = arith.constant dense<[[12.0, -3.0, 1.0, 0.5, 0.75, 1.5, -0.375, 0.0],
                             [-6.0, 6.0, 2.5, -5.0, 3.0, 3.0, -3.0, 0.0]]> : tensor<2x8xf32>
  %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                      affine_map<(m, n, k) -> (n, k)>,
                                      affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %w : tensor<3x8xf32>, tensor<2x8xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  return %y : tensor<3x2xf32>
}

// -----

// OCP E4M3 per channel: s = absmax / 448, one byte per code
// (sign.eeee.mmm, bias 7). Row 0 [448, -1, 0.5, 3]: s = 1, codes 0x7E (max),
// 0xB8, 0x30, 0x44. Row 1 [-0.015625, 0, 7, -7]: s = 7/448 = 2^-6,
// w/s = -1 0 448 -448 -> 0xB8 0x00 0x7E 0xFE.
// COMMON-LABEL: func.func @e4m3_channel
// COMMON-NOT: arith.constant dense<{{.*}}> : tensor<2x4xf32>
// E4M3-DAG: %[[CODES:.*]] = arith.constant dense<{{\[}}[126, -72, 48, 68], [-72, 0, 126, -2]]> : tensor<2x4xi8>
// E4M3-DAG: %[[SCALE:.*]] = arith.constant dense<{{\[}}[1.000000e+00], [1.562500e-02]]> : tensor<2x1xf32>
// E4M3: qnt.dequant #qnt.minifloat<exponent_bits = 4, mantissa_bits = 3, special = ocp>(%[[CODES]], %[[SCALE]]) : (tensor<2x4xi8>, tensor<2x1xf32>) -> tensor<2x4xf32>
func.func @e4m3_channel(%x: tensor<3x4xf32>, %acc: tensor<3x2xf32>) -> tensor<3x2xf32> {
  %w = arith.constant dense<[[448.0, -1.0, 0.5, 3.0], [-0.015625, 0.0, 7.0, -7.0]]> : tensor<2x4xf32>
  %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                      affine_map<(m, n, k) -> (n, k)>,
                                      affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %w : tensor<3x4xf32>, tensor<2x4xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  return %y : tensor<3x2xf32>
}

// -----

// A constant used by two matmuls: each gets its own dequant, and the float
// constant is gone.
// COMMON-LABEL: func.func @shared_weight
// COMMON-NOT: arith.constant dense<{{.*}}> : tensor<2x4xf32>
// COMMON-COUNT-2: qnt.dequant
// COMMON-NOT: arith.constant dense<{{.*}}> : tensor<2x4xf32>
// COMMON: return
func.func @shared_weight(%x: tensor<3x4xf32>, %acc: tensor<3x2xf32>) -> (tensor<3x2xf32>, tensor<3x2xf32>) {
  %w = arith.constant dense<[[1.0, 2.0, 3.0, 4.0], [-1.0, -2.0, -3.0, -4.0]]> : tensor<2x4xf32>
  %y0 = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                       affine_map<(m, n, k) -> (n, k)>,
                                       affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %w : tensor<3x4xf32>, tensor<2x4xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  %y1 = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                       affine_map<(m, n, k) -> (n, k)>,
                                       affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %w : tensor<3x4xf32>, tensor<2x4xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  return %y0, %y1 : tensor<3x2xf32>, tensor<3x2xf32>
}

// -----

// Negative: a weight that is a function argument is neither a constant nor a
// parameter, so the matmul is left unchanged.
// COMMON-LABEL: func.func @weight_is_argument
// COMMON-SAME: (%[[X:[^:]*]]: tensor<3x4xf32>, %[[W:[^:]*]]: tensor<4x2xf32>, %[[ACC:[^:]*]]: tensor<3x2xf32>)
// COMMON-NOT: qnt.dequant
// COMMON: linalg.matmul ins(%[[X]], %[[W]] : tensor<3x4xf32>, tensor<4x2xf32>) outs(%[[ACC]] : tensor<3x2xf32>)
// COMMON-NOT: qnt.dequant
// COMMON: return
func.func @weight_is_argument(%x: tensor<3x4xf32>, %w: tensor<4x2xf32>, %acc: tensor<3x2xf32>) -> tensor<3x2xf32> {
  %y = linalg.matmul ins(%x, %w : tensor<3x4xf32>, tensor<4x2xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  return %y : tensor<3x2xf32>
}

// -----

// Negative: a transpose-A matmul (user-defined maps other than transpose-B)
// keeps its constant weight.
// COMMON-LABEL: func.func @transpose_a_unchanged
// COMMON: %[[W:.*]] = arith.constant dense<{{.*}}> : tensor<4x2xf32>
// COMMON-NOT: qnt.dequant
// COMMON: linalg.matmul indexing_maps = [#{{.*}}, #{{.*}}, #{{.*}}] ins(%{{.*}}, %[[W]] : tensor<4x3xf32>, tensor<4x2xf32>)
// COMMON-NOT: qnt.dequant
// COMMON: return
func.func @transpose_a_unchanged(%x: tensor<4x3xf32>, %acc: tensor<3x2xf32>) -> tensor<3x2xf32> {
  %w = arith.constant dense<[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]]> : tensor<4x2xf32>
  %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (k, m)>,
                                      affine_map<(m, n, k) -> (k, n)>,
                                      affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %w : tensor<4x3xf32>, tensor<4x2xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  return %y : tensor<3x2xf32>
}

// -----

// Negative: an integer weight is not a float constant and is left alone.
// COMMON-LABEL: func.func @integer_weight_unchanged
// COMMON: %[[W:.*]] = arith.constant dense<{{.*}}> : tensor<4x2xi8>
// COMMON-NOT: qnt.dequant
// COMMON: linalg.matmul ins(%{{.*}}, %[[W]] : tensor<3x4xi8>, tensor<4x2xi8>)
func.func @integer_weight_unchanged(%x: tensor<3x4xi8>, %acc: tensor<3x2xi32>) -> tensor<3x2xi32> {
  %w = arith.constant dense<[[1, 2], [3, 4], [5, 6], [7, 8]]> : tensor<4x2xi8>
  %y = linalg.matmul ins(%x, %w : tensor<3x4xi8>, tensor<4x2xi8>) outs(%acc : tensor<3x2xi32>) -> tensor<3x2xi32>
  return %y : tensor<3x2xi32>
}
