//===- VectorMatmul.cpp - Vector matmul kernels for the CPU -----*- C++ -*-===//
//
// See VectorMatmul.h.
//
//===----------------------------------------------------------------------===//

#include "passes/lowering/VectorMatmul.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/TypeUtilities.h"

using namespace mlir;
using namespace mlir::qnt;

namespace {

Value addConstant(OpBuilder &b, Location loc, Value base, int64_t offset) {
  if (offset == 0)
    return base;
  return arith::AddIOp::create(b, loc, base,
                               arith::ConstantIndexOp::create(b, loc, offset));
}

/// The f32 dot products of one tile; see buildVectorMatmul.
struct F32TileDot {
  Location loc;
  Value input;
  int64_t k;
  WeightRunBuilder weightRun;
  WeightElementBuilder weightElement;
  VectorMatmulShape shape;

  Type f32(OpBuilder &b) const { return b.getF32Type(); }
  VectorType runType(OpBuilder &b) const {
    return VectorType::get({shape.vectorWidth}, b.getF32Type());
  }
  Value index(OpBuilder &b, int64_t v) const {
    return arith::ConstantIndexOp::create(b, loc, v);
  }
  Value addIndex(OpBuilder &b, Value base, int64_t offset) const {
    return addConstant(b, loc, base, offset);
  }

  /// x[m, k .. k + vectorWidth) as f32 lanes.
  Value readInputRun(OpBuilder &b, Value m, Value col) const {
    Value run = readRun(b, loc, input, {m, col}, shape.vectorWidth);
    if (getElementTypeOrSelf(run.getType()).isF32())
      return run;
    return arith::ExtFOp::create(b, loc, runType(b), run);
  }

  /// x[m, k] as f32.
  Value readInputElement(OpBuilder &b, Value m, Value col) const {
    Value x = tensor::ExtractOp::create(b, loc, input, ValueRange{m, col});
    if (x.getType().isF32())
      return x;
    return arith::ExtFOp::create(b, loc, f32(b), x);
  }

  /// One k loop over [lo, hi) with `runsPerStep` runs per iteration: for
  /// every run, the `cols` weight runs are dequantized once and the `rows`
  /// input runs read once, and each (row, weight row) pair accumulates
  /// into its own accumulator. The runs of one step share their scale
  /// group when the step divides the group, so its scale is loaded once.
  SmallVector<Value> accumulate(OpBuilder &b, const MatmulTile &t, int64_t lo,
                                int64_t hi, int64_t runsPerStep,
                                ValueRange accumulators) const {
    int64_t step = runsPerStep * shape.vectorWidth;
    auto loop = scf::ForOp::create(
        b, loc, index(b, lo), index(b, hi), index(b, step),
        accumulators,
        [&](OpBuilder &lb, Location, Value col, ValueRange acc) {
          SmallVector<Value> next(acc);
          for (int64_t u = 0; u < runsPerStep; ++u) {
            Value runCol = addIndex(lb, col, u * shape.vectorWidth);
            SmallVector<Value> w;
            for (int64_t j = 0; j < t.cols; ++j)
              w.push_back(weightRun(lb, loc, addIndex(lb, t.n0, j), runCol,
                                    shape.vectorWidth));
            for (int64_t r = 0; r < t.rows; ++r) {
              Value x = readInputRun(lb, addIndex(lb, t.m0, r), runCol);
              for (int64_t j = 0; j < t.cols; ++j) {
                Value &a = next[r * t.cols + j];
                a = vector::FMAOp::create(lb, loc, x, w[j], a);
              }
            }
          }
          scf::YieldOp::create(lb, loc, next);
        });
    return SmallVector<Value>(loop.getResults());
  }

  /// The rows x cols dot products of the tile as f32 scalars, row-major.
  SmallVector<Value> operator()(OpBuilder &b, const MatmulTile &t) const {
    int64_t width = shape.vectorWidth, unroll = shape.unroll;
    int64_t mainEnd = k / (width * unroll) * (width * unroll);
    int64_t runEnd = k / width * width;
    Value zeroRun = arith::ConstantOp::create(
        b, loc, SplatElementsAttr::get(runType(b), b.getF32FloatAttr(0.0f)));

    int64_t outputs = t.rows * t.cols;
    SmallVector<Value> acc(outputs, zeroRun);
    if (mainEnd > 0)
      acc = accumulate(b, t, 0, mainEnd, unroll, acc);
    if (runEnd > mainEnd)
      acc = accumulate(b, t, mainEnd, runEnd, 1, acc);

    // Each accumulator summed across lanes; the order is free (reassoc),
    // as in any vectorized dot product.
    SmallVector<Value> sums;
    for (int64_t o = 0; o < outputs; ++o) {
      Value sum = runEnd > 0 ? vector::ReductionOp::create(
                                   b, loc, vector::CombiningKind::ADD, acc[o],
                                   arith::FastMathFlags::reassoc)
                                   .getResult()
                             : arith::ConstantOp::create(
                                   b, loc, b.getF32FloatAttr(0.0f))
                                   .getResult();
      Value m = addIndex(b, t.m0, o / t.cols);
      Value n = addIndex(b, t.n0, o % t.cols);
      for (int64_t col = runEnd; col < k; ++col) {
        Value c = index(b, col);
        Value product = arith::MulFOp::create(b, loc, readInputElement(b, m, c),
                                              weightElement(b, loc, n, c));
        sum = arith::AddFOp::create(b, loc, sum, product);
      }
      sums.push_back(sum);
    }
    return sums;
  }

};

/// The tiles and loops around a TileDotBuilder; see buildTiledMatmul.
struct TiledMatmulBuilder {
  Location loc;
  Value input;
  int64_t n, k;
  TileDotBuilder dotTile;
  Value init;
  VectorMatmulShape shape;

  Value index(OpBuilder &b, int64_t v) const {
    return arith::ConstantIndexOp::create(b, loc, v);
  }
  Value addIndex(OpBuilder &b, Value base, int64_t offset) const {
    return addConstant(b, loc, base, offset);
  }

  /// A block of outputs and the column of y its first weight row writes
  /// (n0 itself, or 0 in the [M, cols] slice of a parallel tile).
  struct Tile : MatmulTile {
    Value yColumn;
  };

  /// y over the tile = its dot products (+ init); returns the new y.
  Value storeTile(OpBuilder &b, Value y, const Tile &t) const {
    SmallVector<Value> sums = dotTile(b, t);
    for (int64_t o = 0; o < t.rows * t.cols; ++o) {
      Value m = addIndex(b, t.m0, o / t.cols);
      Value n = addIndex(b, t.n0, o % t.cols);
      Value sum = sums[o];
      if (init)
        sum = arith::AddFOp::create(
            b, loc, tensor::ExtractOp::create(b, loc, init, ValueRange{m, n}),
            sum);
      Value column = addIndex(b, t.yColumn, o % t.cols);
      y = tensor::InsertOp::create(b, loc, sum, y, ValueRange{m, column});
    }
    return y;
  }

  /// Weight rows per tile for tiles of `rows` activation rows: as many of
  /// the `cols` as the accumulator budget allows, dividing `cols`.
  int64_t colsFor(int64_t rows, int64_t cols) const {
    int64_t fit = std::max<int64_t>(1, shape.accumulators / rows);
    int64_t c = std::min(cols, fit);
    while (cols % c != 0)
      --c;
    return c;
  }

  /// For m0 in [lo, hi) by `rows`: y[m0 .. m0 + rows, n0 .. n0 + cols].
  Value rowTiles(OpBuilder &b, Value y, Value lo, Value hi, int64_t rows,
                 Value n0, Value yColumn, int64_t cols) const {
    int64_t sub = colsFor(rows, cols);
    auto loop = scf::ForOp::create(
        b, loc, lo, hi, index(b, rows), ValueRange{y},
        [&](OpBuilder &lb, Location, Value m0, ValueRange carried) {
          Value yi = carried[0];
          for (int64_t j = 0; j < cols; j += sub)
            yi = storeTile(lb, yi,
                           Tile{{m0, rows, addIndex(lb, n0, j), sub},
                                addIndex(lb, yColumn, j)});
          scf::YieldOp::create(lb, loc, yi);
        });
    return loop.getResult(0);
  }

  /// Every row tile (then the 1-row remainder) of weight rows n0 .. n0 +
  /// cols.
  Value allRows(OpBuilder &b, Value y, Value m, Value tiled, Value n0,
                Value yColumn, int64_t cols) const {
    int64_t tile = shape.rowTile;
    Value zero = index(b, 0);
    if (tile > 1)
      y = rowTiles(b, y, zero, tiled, tile, n0, yColumn, cols);
    return rowTiles(b, y, tile > 1 ? tiled : zero, m, 1, n0, yColumn, cols);
  }

  /// The tiles of weight rows [lo, hi) by `cols` as one scf.forall: each
  /// computes its [M, cols] slice of y, inserted in parallel.
  Value parallelColTiles(OpBuilder &b, Value y, Value m, Value tiled,
                         int64_t lo, int64_t hi, int64_t cols) const {
    auto forall = scf::ForallOp::create(
        b, loc, ArrayRef<OpFoldResult>{b.getIndexAttr((hi - lo) / cols)},
        ValueRange{y}, std::nullopt);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPoint(forall.getTerminator());
    Value tileIndex = forall.getInductionVar(0);
    Value out = forall.getRegionIterArgs()[0];
    Value n0 = addIndex(b,
                        arith::MulIOp::create(b, loc, tileIndex,
                                              index(b, cols)),
                        lo);
    SmallVector<OpFoldResult> offsets = {b.getIndexAttr(0), n0};
    SmallVector<OpFoldResult> sizes = {m, b.getIndexAttr(cols)};
    SmallVector<OpFoldResult> strides(2, b.getIndexAttr(1));
    Value slice =
        tensor::ExtractSliceOp::create(b, loc, out, offsets, sizes, strides);
    Value result =
        allRows(b, slice, m, tiled, n0, index(b, 0), cols);
    b.setInsertionPointToStart(forall.getTerminator().getBody());
    tensor::ParallelInsertSliceOp::create(b, loc, result, out, offsets, sizes,
                                          strides);
    return forall.getResult(0);
  }

  /// The loop over weight rows [lo, hi) by `cols`.
  Value colTiles(OpBuilder &b, Value y, Value m, Value tiled, int64_t lo,
                 int64_t hi, int64_t cols) const {
    if (hi <= lo)
      return y;
    if (shape.parallel && n * k >= shape.parallelWeights && hi - lo > cols)
      return parallelColTiles(b, y, m, tiled, lo, hi, cols);
    auto loop = scf::ForOp::create(
        b, loc, index(b, lo), index(b, hi), index(b, cols),
        ValueRange{y},
        [&](OpBuilder &lb, Location, Value n0, ValueRange carried) {
          scf::YieldOp::create(
              lb, loc, allRows(lb, carried[0], m, tiled, n0, n0, cols));
        });
    return loop.getResult(0);
  }

  Value build(OpBuilder &b) const {
    auto inputType = cast<RankedTensorType>(input.getType());
    Value m = inputType.isDynamicDim(0)
                  ? tensor::DimOp::create(b, loc, input, 0).getResult()
                  : index(b, inputType.getDimSize(0));
    auto resultType = RankedTensorType::get(
        {inputType.getDimSize(0), n}, b.getF32Type());
    SmallVector<Value> dynamicSizes;
    if (inputType.isDynamicDim(0))
      dynamicSizes.push_back(m);
    Value empty = tensor::EmptyOp::create(b, loc, resultType, dynamicSizes);

    // Weight tiles outermost: the weight is streamed once, `colTile` rows
    // side by side; each tile is reused from the cache by every tile of
    // activation rows.
    int64_t tile = shape.rowTile;
    Value tiled = arith::SubIOp::create(
        b, loc, m, arith::RemUIOp::create(b, loc, m, index(b, tile)));
    int64_t cols = std::min(shape.colTile, n);
    int64_t fullEnd = n / cols * cols;
    Value y = colTiles(b, empty, m, tiled, 0, fullEnd, cols);
    return colTiles(b, y, m, tiled, fullEnd, n, 1);
  }
};

} // namespace

Value mlir::qnt::readRun(OpBuilder &b, Location loc, Value tensor,
                         ValueRange indices, int64_t count) {
  Type element = cast<RankedTensorType>(tensor.getType()).getElementType();
  Value pad = arith::ConstantOp::create(b, loc, b.getZeroAttr(element));
  return vector::TransferReadOp::create(b, loc,
                                        VectorType::get({count}, element),
                                        tensor, indices, pad,
                                        /*inBounds=*/ArrayRef<bool>{true});
}

Value mlir::qnt::buildVectorMatmul(OpBuilder &b, Location loc, Value input,
                                   int64_t n, int64_t k,
                                   WeightRunBuilder weightRun,
                                   WeightElementBuilder weightElement,
                                   Value init, const VectorMatmulShape &shape) {
  F32TileDot dot{loc, input, k, weightRun, weightElement, shape};
  return buildTiledMatmul(b, loc, input, n, k, dot, init, shape);
}

Value mlir::qnt::buildTiledMatmul(OpBuilder &b, Location loc, Value input,
                                  int64_t n, int64_t k, TileDotBuilder dotTile,
                                  Value init, const VectorMatmulShape &shape) {
  TiledMatmulBuilder builder{loc, input, n, k, dotTile, init, shape};
  return builder.build(b);
}
