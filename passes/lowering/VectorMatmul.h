//===- VectorMatmul.h - Vector matmul kernels for the CPU -------*- C++ -*-===//
//
// The CPU kernel of qnt-lower-matmul-cpu, built at the tensor level from
// scf.for loops and vector ops: y[m, n] = sum_k x[m, k] * W[n, k] with the
// weight produced a run of consecutive k at a time by a callback (the
// encoding's emitDequantVector, or a plain read of a dense weight), so the
// same loop structure serves every encoding and the dense baseline.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_PASSES_LOWERING_VECTORMATMUL_H
#define QNT_PASSES_LOWERING_VECTORMATMUL_H

#include "mlir/IR/Builders.h"

namespace mlir::qnt {

/// Tile shape of the vector kernel.
struct VectorMatmulShape {
  /// f32 lanes per vector (16 for 512-bit registers).
  int64_t vectorWidth = 16;
  /// Runs of `vectorWidth` per k step, each with its own accumulator per
  /// row, so that `unroll` fused multiply-adds per row are in flight.
  int64_t unroll = 4;
  /// Activation rows sharing each dequantized weight run.
  int64_t rowTile = 4;
};

/// The widest f32 vector of the host CPU: 16 lanes with AVX-512, 8 with
/// AVX, else 4.
int64_t hostVectorWidth();

/// Emits the vector<width x f32> of W[n, k .. k + width) (k a multiple of
/// width).
using WeightRunBuilder = llvm::function_ref<Value(
    OpBuilder &b, Location loc, Value n, Value k, int64_t width)>;
/// Emits the f32 W[n, k].
using WeightElementBuilder =
    llvm::function_ref<Value(OpBuilder &b, Location loc, Value n, Value k)>;

/// Emits `input * W^T` for an [M, K] `input` (any float element type, M
/// static or dynamic) and an [N, K] weight, as an f32 [M, N] tensor, plus
/// `init` (an f32 [M, N] tensor) when given. For each weight row n and each
/// tile of `shape.rowTile` activation rows, k advances by
/// `vectorWidth * unroll` with that many independent accumulators per row;
/// a k remainder uses single runs, and the last K % vectorWidth elements
/// the scalar builder. Each weight run is produced once per row tile and
/// used by every row of the tile.
Value buildVectorMatmul(OpBuilder &b, Location loc, Value input, int64_t n,
                        int64_t k, WeightRunBuilder weightRun,
                        WeightElementBuilder weightElement, Value init,
                        const VectorMatmulShape &shape);

} // namespace mlir::qnt

#endif // QNT_PASSES_LOWERING_VECTORMATMUL_H
