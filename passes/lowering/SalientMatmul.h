//===- SalientMatmul.h - Salient-channel matmuls as two kernels -*- C++ -*-===//
//
// The CPU kernel of qnt-lower-matmul-cpu for `#qnt.salient` weights
// (PTQ1.61): the input's columns are split by the channel map into the
// salient and the rest columns once per call, and each part runs the vector
// kernel of its own encoding (4-bit integers, binarized signs), the rest
// part accumulating onto the salient part's result. A fused kernel over the
// whole row would dispatch on the map lane by lane. See docs/CpuKernels.md.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_PASSES_LOWERING_SALIENTMATMUL_H
#define QNT_PASSES_LOWERING_SALIENTMATMUL_H

#include "dialects/qnt/QntDialect.h"
#include "passes/lowering/VectorMatmul.h"

namespace mlir::qnt {

/// Emits `input * W^T` as an f32 [M, N] tensor for the `#qnt.salient`
/// weight `components` ([N, K]; input [M, K] f32, M may be dynamic): the
/// input's columns gathered into [M, S] and [M, K - S] by the channel map,
/// then the two parts' vector kernels of `shape`. Sums differ from the
/// fused kernel's only by reassociation.
Value buildSalientSplitMatmul(OpBuilder &b, Location loc, Value input,
                              ValueRange components,
                              SalientEncodingAttr encoding, int64_t n,
                              int64_t k, const VectorMatmulShape &shape);

} // namespace mlir::qnt

#endif // QNT_PASSES_LOWERING_SALIENTMATMUL_H
