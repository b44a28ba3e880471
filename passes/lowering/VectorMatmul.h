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
  /// f32 lanes per run (a multiple of the register's: 32 is two 512-bit
  /// registers).
  int64_t vectorWidth = 32;
  /// Runs per k step (sharing the accumulators; a step that divides the
  /// scale group loads its scale once).
  int64_t unroll = 4;
  /// Activation rows sharing each dequantized weight run.
  int64_t rowTile = 4;
  /// Weight rows processed side by side, sharing each input run.
  int64_t colTile = 4;
  /// Accumulator runs a tile may hold (registers / registers per run):
  /// tiles of several activation rows use fewer weight rows to fit.
  int64_t accumulators = 12;
  /// Whether the tiles of weight rows may form an scf.forall (run on
  /// threads once lowered to OpenMP) rather than an scf.for...
  bool parallel = false;
  /// ... which they do for weights of at least this many elements: smaller
  /// kernels do not repay a fork and join.
  int64_t parallelWeights = 0;
  /// Software prefetch of the packed codes this many bytes ahead of each
  /// load, in the storage order of the codes (0: none; -1: the kernel
  /// chooses). A thread streaming rows of a few KiB keeps too few cache-line
  /// requests in flight for the read bound; the int8 kernel uses it.
  int64_t prefetchBytes = -1;
};

/// The `count` consecutive elements of `tensor` that start at `indices`
/// along its last dimension, as a vector (vector.transfer_read, in bounds:
/// the caller guarantees the run lies in the tensor).
Value readRun(OpBuilder &b, Location loc, Value tensor, ValueRange indices,
              int64_t count);

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

/// A block of outputs: activation rows m0 .. m0 + rows, weight rows n0 ..
/// n0 + cols.
struct MatmulTile {
  Value m0;
  int64_t rows;
  Value n0;
  int64_t cols;
};

/// Emits the rows x cols dot products of a tile as f32 scalars, row-major.
using TileDotBuilder = llvm::function_ref<SmallVector<Value>(
    OpBuilder &b, const MatmulTile &tile)>;

/// Emits the [M, N] f32 result of `dotTile` over every tile (plus `init`,
/// an f32 [M, N] tensor, when given) for an [M, K] `input` (M static or
/// dynamic; only its shape is read here). Tiles of `colTile` weight rows
/// are outermost, so each weight row is streamed once per call, inside
/// them tiles of `rowTile` activation rows, then single rows; tiles of
/// several rows use fewer weight rows so that the accumulators fit. With
/// `parallel`, the weight tiles of a large enough kernel form an
/// scf.forall writing disjoint column slices.
Value buildTiledMatmul(OpBuilder &b, Location loc, Value input, int64_t n,
                       int64_t k, TileDotBuilder dotTile, Value init,
                       const VectorMatmulShape &shape);

/// Emits `input * W^T` for an [M, K] `input` (any float element type, M
/// static or dynamic) and an [N, K] weight, as an f32 [M, N] tensor, plus
/// `init` (an f32 [M, N] tensor) when given. For each tile of `colTile`
/// weight rows and each tile of `rowTile` activation rows (then single
/// rows), k advances by `vectorWidth * unroll` with one accumulator per
/// (row, weight row); a k remainder uses single runs, and the last
/// K % vectorWidth elements the scalar builder. Each weight run is produced
/// once per row tile and used by every row of the tile; each input run is
/// read once per weight tile.
Value buildVectorMatmul(OpBuilder &b, Location loc, Value input, int64_t n,
                        int64_t k, WeightRunBuilder weightRun,
                        WeightElementBuilder weightElement, Value init,
                        const VectorMatmulShape &shape);

} // namespace mlir::qnt

#endif // QNT_PASSES_LOWERING_VECTORMATMUL_H
