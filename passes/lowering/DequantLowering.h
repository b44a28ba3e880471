//===- DequantLowering.h - Building blocks of qnt lowerings -----*- C++ -*-===//
//
// Tensor-level builders shared by qnt-lower-to-linalg and
// qnt-lower-matmul-fused: both call the encoding's emitDequantElement with a
// loader that reads components through tensor.extract.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_PASSES_LOWERING_DEQUANTLOWERING_H
#define QNT_PASSES_LOWERING_DEQUANTLOWERING_H

#include "dialects/qnt/QntDialect.h"

namespace mlir::qnt {

/// Emits `linalg.generic` computing the dequantized [N, K] weight of type
/// `resultType` from `components`.
Value buildDequantizedWeight(OpBuilder &b, Location loc,
                             EncodingAttrInterface encoding,
                             ValueRange components,
                             RankedTensorType resultType);

/// Emits one `linalg.generic` over (m, n, k), k innermost, computing
/// `input * W^T` with W dequantized element by element inside the body.
/// Accumulates in f32 and converts once to `resultType`'s element type.
Value buildFusedMatmul(OpBuilder &b, Location loc,
                       EncodingAttrInterface encoding, Value input,
                       ValueRange components, RankedTensorType resultType);

struct VectorMatmulShape;

/// Emits the vector kernel of buildVectorMatmul computing `input * W^T`,
/// with W's runs dequantized by the encoding's emitDequantVector (and the
/// last K % vectorWidth columns by emitDequantElement). Static N and K; M
/// may be dynamic. Accumulates in f32, adds `init` (an f32 [M, N] tensor)
/// when given, and converts once to `resultType`'s element type.
Value buildVectorFusedMatmul(OpBuilder &b, Location loc,
                             EncodingAttrInterface encoding, Value input,
                             ValueRange components,
                             RankedTensorType resultType,
                             const VectorMatmulShape &shape,
                             Value init = {});

/// Elementwise conversion of a float tensor to `elementType` (extf/truncf),
/// or `value` itself when it already has that element type.
Value convertElementType(OpBuilder &b, Location loc, Value value,
                         Type elementType);

/// An uninitialized tensor of `type`. Its dynamic dimensions take the
/// sizes of the same dimensions of `shapeSource` (e.g. the matmul input for
/// the M of an [M, N] result, or the operand of an elementwise op).
Value buildEmpty(OpBuilder &b, Location loc, RankedTensorType type,
                 Value shapeSource = {});

/// A zero-filled tensor of `type` (dynamic dimensions as in buildEmpty).
Value buildZeroTensor(OpBuilder &b, Location loc, RankedTensorType type,
                      Value shapeSource = {});

} // namespace mlir::qnt

#endif // QNT_PASSES_LOWERING_DEQUANTLOWERING_H
