//===- CodebookLutMatmul.h - Lookup-table kernel for codebooks --*- C++ -*-===//
//
// The CPU kernel of qnt-lower-matmul-cpu for additive codebooks (AQLM) with
// int8 activations: instead of dequantizing weights, each call tabulates the
// dot products of every input group with every codebook entry (T-MAC/AQLM
// style) as int8 tables, one scale per tile of groups, and sums table
// entries picked by the codes with byte permutes (vpermi2b, AVX512-VBMI),
// 32 weight rows per 512-bit register. See docs/CpuKernels.md.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_PASSES_LOWERING_CODEBOOKLUTMATMUL_H
#define QNT_PASSES_LOWERING_CODEBOOKLUTMATMUL_H

#include "dialects/qnt/QntDialect.h"

namespace mlir::qnt {

/// Why the lookup-table kernel cannot run `encoding` on an [N, K] weight,
/// or "" when it can: two codebooks of at most 8-bit codes, codes tiled by
/// a multiple of 32 rows (at most 128) and at most 128 groups.
std::string codebookLutLimitation(CodebookEncodingAttr encoding);

/// Emits `input * W^T` (f32 [M, N], input [M, K] of any float type) for
/// the codebook weight `components` with the lookup-table kernel (the
/// encoding passes codebookLutLimitation). The weight's row tiles are split
/// into `parts` contiguous ranges, an scf.forall when `parts` > 1; codes are
/// prefetched `prefetchBytes` ahead in storage order (0: not).
Value buildCodebookLutMatmul(OpBuilder &b, Location loc, Value input,
                             ValueRange components,
                             CodebookEncodingAttr encoding, int64_t n,
                             int64_t k, int64_t parts, int64_t prefetchBytes);

} // namespace mlir::qnt

#endif // QNT_PASSES_LOWERING_CODEBOOKLUTMATMUL_H
