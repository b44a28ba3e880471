// qnt-fuse-dequant-matmul: linalg.matmul(x, linalg.transpose(qnt.dequant))
// and transpose-B linalg.matmul(x, qnt.dequant) with a zero-filled
// accumulator become qnt.matmul. In the negative cases the witness of
// "declined" is the linalg.matmul left in place and no qnt.matmul.
// RUN: quant-opt %s -split-input-file --qnt-fuse-dequant-matmul | FileCheck %s

// Plain matmul on the [K, N] transpose of a dequantized [N, K] weight; the
// dequant, transpose and fill die with the matmul.
// CHECK-LABEL: func.func @plain_transposed
// CHECK-SAME: (%[[X:[^:]*]]: tensor<3x8xf32>, %[[CODES:[^:]*]]: tensor<2x4xi8>, %[[SCALE:[^:]*]]: tensor<2x1xf32>, %[[ZERO_POINT:[^:]*]]: tensor<2x1xi8>)
// CHECK-NOT: qnt.dequant
// CHECK-NOT: linalg.transpose
// CHECK-NOT: linalg.fill
// CHECK: %[[Y:.*]] = qnt.matmul %[[X]], #qnt.uniform<bits = 4, mode = asymmetric>(%[[CODES]], %[[SCALE]], %[[ZERO_POINT]]) : (tensor<3x8xf32>, tensor<2x4xi8>, tensor<2x1xf32>, tensor<2x1xi8>) -> tensor<3x2xf32>
// CHECK-NOT: linalg.matmul
// CHECK: return %[[Y]]
func.func @plain_transposed(%x: tensor<3x8xf32>, %codes: tensor<2x4xi8>, %scales: tensor<2x1xf32>, %zeros: tensor<2x1xi8>) -> tensor<3x2xf32> {
  %w = qnt.dequant #qnt.uniform<bits = 4, mode = asymmetric>(%codes, %scales, %zeros) : (tensor<2x4xi8>, tensor<2x1xf32>, tensor<2x1xi8>) -> tensor<2x8xf32>
  %e = tensor.empty() : tensor<8x2xf32>
  %wt = linalg.transpose ins(%w : tensor<2x8xf32>) outs(%e : tensor<8x2xf32>) permutation = [1, 0]
  %zero = arith.constant 0.0 : f32
  %ea = tensor.empty() : tensor<3x2xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%ea : tensor<3x2xf32>) -> tensor<3x2xf32>
  %y = linalg.matmul ins(%x, %wt : tensor<3x8xf32>, tensor<8x2xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  return %y : tensor<3x2xf32>
}

// -----

// Transpose-B matmul (indexing_maps form) directly on the dequant.
// CHECK-LABEL: func.func @transpose_b
// CHECK-SAME: (%[[X:[^:]*]]: tensor<3x8xf32>, %[[CODES:[^:]*]]: tensor<2x4xi8>, %[[SCALE:[^:]*]]: tensor<2x2xf32>)
// CHECK: %[[Y:.*]] = qnt.matmul %[[X]], #qnt.minifloat<exponent_bits = 2, mantissa_bits = 1, granularity = per_group, group_size = 4>(%[[CODES]], %[[SCALE]]) : (tensor<3x8xf32>, tensor<2x4xi8>, tensor<2x2xf32>) -> tensor<3x2xf32>
// CHECK-NOT: linalg.matmul
// CHECK: return %[[Y]]
func.func @transpose_b(%x: tensor<3x8xf32>, %codes: tensor<2x4xi8>, %scales: tensor<2x2xf32>) -> tensor<3x2xf32> {
  %w = qnt.dequant #qnt.minifloat<exponent_bits = 2, mantissa_bits = 1, granularity = per_group, group_size = 4>(%codes, %scales) : (tensor<2x4xi8>, tensor<2x2xf32>) -> tensor<2x8xf32>
  %zero = arith.constant 0.0 : f32
  %ea = tensor.empty() : tensor<3x2xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%ea : tensor<3x2xf32>) -> tensor<3x2xf32>
  %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                      affine_map<(m, n, k) -> (n, k)>,
                                      affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %w : tensor<3x8xf32>, tensor<2x8xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  return %y : tensor<3x2xf32>
}

// -----

// All-f16 matmul: fused with f16 input and result.
// CHECK-LABEL: func.func @f16
// CHECK: qnt.matmul %{{.*}}, #qnt.uniform<bits = 8>(%{{.*}}, %{{.*}}) : (tensor<3x8xf16>, tensor<2x8xi8>, tensor<2x1xf32>) -> tensor<3x2xf16>
// CHECK-NOT: linalg.matmul
func.func @f16(%x: tensor<3x8xf16>, %codes: tensor<2x8xi8>, %scales: tensor<2x1xf32>) -> tensor<3x2xf16> {
  %w = qnt.dequant #qnt.uniform<bits = 8>(%codes, %scales) : (tensor<2x8xi8>, tensor<2x1xf32>) -> tensor<2x8xf16>
  %zero = arith.constant 0.0 : f16
  %ea = tensor.empty() : tensor<3x2xf16>
  %acc = linalg.fill ins(%zero : f16) outs(%ea : tensor<3x2xf16>) -> tensor<3x2xf16>
  %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                      affine_map<(m, n, k) -> (n, k)>,
                                      affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %w : tensor<3x8xf16>, tensor<2x8xf16>) outs(%acc : tensor<3x2xf16>) -> tensor<3x2xf16>
  return %y : tensor<3x2xf16>
}

// -----

// A dequant with another use: the matmul is fused, the dequant stays for the
// other use.
// CHECK-LABEL: func.func @dequant_shared
// CHECK: %[[W:.*]] = qnt.dequant
// CHECK: %[[Y:.*]] = qnt.matmul
// CHECK-NOT: linalg.matmul
// CHECK: return %[[Y]], %[[W]]
func.func @dequant_shared(%x: tensor<3x8xf32>, %codes: tensor<2x8xi8>, %scales: tensor<2x1xf32>) -> (tensor<3x2xf32>, tensor<2x8xf32>) {
  %w = qnt.dequant #qnt.uniform<bits = 8>(%codes, %scales) : (tensor<2x8xi8>, tensor<2x1xf32>) -> tensor<2x8xf32>
  %zero = arith.constant 0.0 : f32
  %ea = tensor.empty() : tensor<3x2xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%ea : tensor<3x2xf32>) -> tensor<3x2xf32>
  %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                      affine_map<(m, n, k) -> (n, k)>,
                                      affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %w : tensor<3x8xf32>, tensor<2x8xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  return %y, %w : tensor<3x2xf32>, tensor<2x8xf32>
}

// -----

// Negative: the accumulator is a function argument, not a zero fill.
// CHECK-LABEL: func.func @acc_argument
// CHECK-NOT: qnt.matmul
// CHECK: linalg.matmul
func.func @acc_argument(%x: tensor<3x8xf32>, %codes: tensor<2x8xi8>, %scales: tensor<2x1xf32>, %acc: tensor<3x2xf32>) -> tensor<3x2xf32> {
  %w = qnt.dequant #qnt.uniform<bits = 8>(%codes, %scales) : (tensor<2x8xi8>, tensor<2x1xf32>) -> tensor<2x8xf32>
  %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                      affine_map<(m, n, k) -> (n, k)>,
                                      affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %w : tensor<3x8xf32>, tensor<2x8xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  return %y : tensor<3x2xf32>
}

// -----

// Negative: the accumulator is filled with 1.0.
// CHECK-LABEL: func.func @acc_filled_with_one
// CHECK-NOT: qnt.matmul
// CHECK: linalg.matmul
func.func @acc_filled_with_one(%x: tensor<3x8xf32>, %codes: tensor<2x8xi8>, %scales: tensor<2x1xf32>) -> tensor<3x2xf32> {
  %w = qnt.dequant #qnt.uniform<bits = 8>(%codes, %scales) : (tensor<2x8xi8>, tensor<2x1xf32>) -> tensor<2x8xf32>
  %one = arith.constant 1.0 : f32
  %ea = tensor.empty() : tensor<3x2xf32>
  %acc = linalg.fill ins(%one : f32) outs(%ea : tensor<3x2xf32>) -> tensor<3x2xf32>
  %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                      affine_map<(m, n, k) -> (n, k)>,
                                      affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %w : tensor<3x8xf32>, tensor<2x8xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  return %y : tensor<3x2xf32>
}

// -----

// Negative: an f16 activation against an f32 weight and result (mixed element
// types).
// CHECK-LABEL: func.func @mixed_input_type
// CHECK-NOT: qnt.matmul
// CHECK: linalg.matmul
func.func @mixed_input_type(%x: tensor<3x8xf16>, %codes: tensor<2x8xi8>, %scales: tensor<2x1xf32>) -> tensor<3x2xf32> {
  %w = qnt.dequant #qnt.uniform<bits = 8>(%codes, %scales) : (tensor<2x8xi8>, tensor<2x1xf32>) -> tensor<2x8xf32>
  %zero = arith.constant 0.0 : f32
  %ea = tensor.empty() : tensor<3x2xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%ea : tensor<3x2xf32>) -> tensor<3x2xf32>
  %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                      affine_map<(m, n, k) -> (n, k)>,
                                      affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %w : tensor<3x8xf16>, tensor<2x8xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  return %y : tensor<3x2xf32>
}

// -----

// Negative: an f16 weight with an f32 activation and result.
// CHECK-LABEL: func.func @mixed_weight_type
// CHECK-NOT: qnt.matmul
// CHECK: linalg.matmul
func.func @mixed_weight_type(%x: tensor<3x8xf32>, %codes: tensor<2x8xi8>, %scales: tensor<2x1xf32>) -> tensor<3x2xf32> {
  %w = qnt.dequant #qnt.uniform<bits = 8>(%codes, %scales) : (tensor<2x8xi8>, tensor<2x1xf32>) -> tensor<2x8xf16>
  %zero = arith.constant 0.0 : f32
  %ea = tensor.empty() : tensor<3x2xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%ea : tensor<3x2xf32>) -> tensor<3x2xf32>
  %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                      affine_map<(m, n, k) -> (n, k)>,
                                      affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %w : tensor<3x8xf32>, tensor<2x8xf16>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  return %y : tensor<3x2xf32>
}

// -----

// Negative: the weight is a function argument, not a dequantization.
// CHECK-LABEL: func.func @weight_argument
// CHECK-NOT: qnt.matmul
// CHECK: linalg.matmul
func.func @weight_argument(%x: tensor<3x8xf32>, %w: tensor<8x2xf32>) -> tensor<3x2xf32> {
  %zero = arith.constant 0.0 : f32
  %ea = tensor.empty() : tensor<3x2xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%ea : tensor<3x2xf32>) -> tensor<3x2xf32>
  %y = linalg.matmul ins(%x, %w : tensor<3x8xf32>, tensor<8x2xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  return %y : tensor<3x2xf32>
}

// -----

// Negative: a transposed argument is not a dequantization either.
// CHECK-LABEL: func.func @transposed_argument
// CHECK-NOT: qnt.matmul
// CHECK: linalg.matmul
func.func @transposed_argument(%x: tensor<3x8xf32>, %w: tensor<2x8xf32>) -> tensor<3x2xf32> {
  %e = tensor.empty() : tensor<8x2xf32>
  %wt = linalg.transpose ins(%w : tensor<2x8xf32>) outs(%e : tensor<8x2xf32>) permutation = [1, 0]
  %zero = arith.constant 0.0 : f32
  %ea = tensor.empty() : tensor<3x2xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%ea : tensor<3x2xf32>) -> tensor<3x2xf32>
  %y = linalg.matmul ins(%x, %wt : tensor<3x8xf32>, tensor<8x2xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  return %y : tensor<3x2xf32>
}

// -----

// Negative: a plain matmul directly on a square dequantized weight. Its [N, K]
// layout would be read as [K, N], so fusing would transpose the weight.
// CHECK-LABEL: func.func @plain_untransposed_square
// CHECK-NOT: qnt.matmul
// CHECK: linalg.matmul
func.func @plain_untransposed_square(%x: tensor<3x8xf32>, %codes: tensor<8x8xi8>, %scales: tensor<8x1xf32>) -> tensor<3x8xf32> {
  %w = qnt.dequant #qnt.uniform<bits = 8>(%codes, %scales) : (tensor<8x8xi8>, tensor<8x1xf32>) -> tensor<8x8xf32>
  %zero = arith.constant 0.0 : f32
  %ea = tensor.empty() : tensor<3x8xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%ea : tensor<3x8xf32>) -> tensor<3x8xf32>
  %y = linalg.matmul ins(%x, %w : tensor<3x8xf32>, tensor<8x8xf32>) outs(%acc : tensor<3x8xf32>) -> tensor<3x8xf32>
  return %y : tensor<3x8xf32>
}

// -----

// Negative: an identity linalg.transpose of a square dequant is no transpose.
// CHECK-LABEL: func.func @identity_permutation
// CHECK-NOT: qnt.matmul
// CHECK: linalg.matmul
func.func @identity_permutation(%x: tensor<3x8xf32>, %codes: tensor<8x8xi8>, %scales: tensor<8x1xf32>) -> tensor<3x8xf32> {
  %w = qnt.dequant #qnt.uniform<bits = 8>(%codes, %scales) : (tensor<8x8xi8>, tensor<8x1xf32>) -> tensor<8x8xf32>
  %e = tensor.empty() : tensor<8x8xf32>
  %wt = linalg.transpose ins(%w : tensor<8x8xf32>) outs(%e : tensor<8x8xf32>) permutation = [0, 1]
  %zero = arith.constant 0.0 : f32
  %ea = tensor.empty() : tensor<3x8xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%ea : tensor<3x8xf32>) -> tensor<3x8xf32>
  %y = linalg.matmul ins(%x, %wt : tensor<3x8xf32>, tensor<8x8xf32>) outs(%acc : tensor<3x8xf32>) -> tensor<3x8xf32>
  return %y : tensor<3x8xf32>
}

// -----

// Negative: a transpose-A matmul (maps other than plain or transpose-B).
// CHECK-LABEL: func.func @transpose_a
// CHECK-NOT: qnt.matmul
// CHECK: linalg.matmul
func.func @transpose_a(%x: tensor<8x3xf32>, %codes: tensor<8x2xi8>, %scales: tensor<8x1xf32>) -> tensor<3x2xf32> {
  %w = qnt.dequant #qnt.uniform<bits = 8>(%codes, %scales) : (tensor<8x2xi8>, tensor<8x1xf32>) -> tensor<8x2xf32>
  %zero = arith.constant 0.0 : f32
  %ea = tensor.empty() : tensor<3x2xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%ea : tensor<3x2xf32>) -> tensor<3x2xf32>
  %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (k, m)>,
                                      affine_map<(m, n, k) -> (k, n)>,
                                      affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %w : tensor<8x3xf32>, tensor<8x2xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  return %y : tensor<3x2xf32>
}
