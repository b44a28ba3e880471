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

using namespace mlir;
using namespace mlir::qnt;

namespace {

/// The loop nest of one vector matmul; see buildVectorMatmul.
struct VectorMatmulBuilder {
  Location loc;
  Value input;
  int64_t n, k;
  WeightRunBuilder weightRun;
  WeightElementBuilder weightElement;
  Value init;
  VectorMatmulShape shape;

  Type f32(OpBuilder &b) const { return b.getF32Type(); }
  VectorType runType(OpBuilder &b) const {
    return VectorType::get({shape.vectorWidth}, b.getF32Type());
  }
  static Value index(OpBuilder &b, Location loc, int64_t v) {
    return arith::ConstantIndexOp::create(b, loc, v);
  }
  Value addIndex(OpBuilder &b, Value base, int64_t offset) const {
    if (offset == 0)
      return base;
    return arith::AddIOp::create(b, loc, base, index(b, loc, offset));
  }

  /// x[m, k .. k + vectorWidth) as f32 lanes.
  Value readInputRun(OpBuilder &b, Value m, Value col) const {
    auto inputType = cast<RankedTensorType>(input.getType());
    Type element = inputType.getElementType();
    auto type = VectorType::get({shape.vectorWidth}, element);
    Value pad = arith::ConstantOp::create(b, loc, b.getZeroAttr(element));
    Value run = vector::TransferReadOp::create(
        b, loc, type, input, ValueRange{m, col}, pad,
        /*inBounds=*/ArrayRef<bool>{true});
    if (element.isF32())
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

  /// One k loop over [lo, hi) with `runsPerStep` runs per iteration:
  /// accumulators[r * runsPerStep + u] += x[m0 + r, run u] * W[n, run u].
  SmallVector<Value> accumulate(OpBuilder &b, Value m0, int64_t rows, Value n,
                                int64_t lo, int64_t hi, int64_t runsPerStep,
                                ValueRange accumulators) const {
    int64_t step = runsPerStep * shape.vectorWidth;
    auto loop = scf::ForOp::create(
        b, loc, index(b, loc, lo), index(b, loc, hi), index(b, loc, step),
        accumulators,
        [&](OpBuilder &lb, Location, Value col, ValueRange acc) {
          SmallVector<Value> next(acc);
          for (int64_t u = 0; u < runsPerStep; ++u) {
            Value runCol = addIndex(lb, col, u * shape.vectorWidth);
            Value w = weightRun(lb, loc, n, runCol, shape.vectorWidth);
            for (int64_t r = 0; r < rows; ++r) {
              Value x = readInputRun(lb, addIndex(lb, m0, r), runCol);
              Value &a = next[r * runsPerStep + u];
              a = vector::FMAOp::create(lb, loc, x, w, a);
            }
          }
          scf::YieldOp::create(lb, loc, next);
        });
    return SmallVector<Value>(loop.getResults());
  }

  /// The `rows` dot products of x[m0 + r, :] with W[n, :] as f32 scalars.
  SmallVector<Value> dotRows(OpBuilder &b, Value m0, int64_t rows,
                             Value n) const {
    int64_t width = shape.vectorWidth, unroll = shape.unroll;
    int64_t mainEnd = k / (width * unroll) * (width * unroll);
    int64_t runEnd = k / width * width;
    Value zeroRun = arith::ConstantOp::create(
        b, loc, SplatElementsAttr::get(runType(b), b.getF32FloatAttr(0.0f)));

    SmallVector<Value> acc(rows * unroll, zeroRun);
    if (mainEnd > 0)
      acc = accumulate(b, m0, rows, n, 0, mainEnd, unroll, acc);
    if (runEnd > mainEnd) {
      SmallVector<Value> first;
      for (int64_t r = 0; r < rows; ++r)
        first.push_back(acc[r * unroll]);
      first = accumulate(b, m0, rows, n, mainEnd, runEnd, 1, first);
      for (int64_t r = 0; r < rows; ++r)
        acc[r * unroll] = first[r];
    }

    // The accumulators of a row summed pairwise, then across lanes; the
    // order is free (reassoc), as in any vectorized dot product.
    SmallVector<Value> sums;
    for (int64_t r = 0; r < rows; ++r) {
      SmallVector<Value> partial(acc.begin() + r * unroll,
                                 acc.begin() + (r + 1) * unroll);
      while (partial.size() > 1) {
        SmallVector<Value> halved;
        for (size_t i = 0; i + 1 < partial.size(); i += 2)
          halved.push_back(
              arith::AddFOp::create(b, loc, partial[i], partial[i + 1]));
        if (partial.size() % 2)
          halved.push_back(partial.back());
        partial = std::move(halved);
      }
      Value sum = runEnd > 0 ? vector::ReductionOp::create(
                                   b, loc, vector::CombiningKind::ADD,
                                   partial.front(),
                                   arith::FastMathFlags::reassoc)
                                   .getResult()
                             : arith::ConstantOp::create(
                                   b, loc, b.getF32FloatAttr(0.0f))
                                   .getResult();
      Value m = addIndex(b, m0, r);
      for (int64_t col = runEnd; col < k; ++col) {
        Value c = index(b, loc, col);
        Value product = arith::MulFOp::create(b, loc, readInputElement(b, m, c),
                                              weightElement(b, loc, n, c));
        sum = arith::AddFOp::create(b, loc, sum, product);
      }
      sums.push_back(sum);
    }
    return sums;
  }

  /// y[m0 .. m0 + rows, n] = the dot products (+ init); returns the new y.
  Value storeRows(OpBuilder &b, Value y, Value m0, int64_t rows,
                  Value n) const {
    SmallVector<Value> sums = dotRows(b, m0, rows, n);
    for (int64_t r = 0; r < rows; ++r) {
      Value m = addIndex(b, m0, r);
      Value sum = sums[r];
      if (init)
        sum = arith::AddFOp::create(
            b, loc, tensor::ExtractOp::create(b, loc, init, ValueRange{m, n}),
            sum);
      y = tensor::InsertOp::create(b, loc, sum, y, ValueRange{m, n});
    }
    return y;
  }

  /// For m0 in [lo, hi) by `rows`: y[m0 .. m0 + rows, n] computed.
  Value rowTiles(OpBuilder &b, Value y, Value lo, Value hi, int64_t rows,
                 Value n) const {
    auto loop = scf::ForOp::create(
        b, loc, lo, hi, index(b, loc, rows), ValueRange{y},
        [&](OpBuilder &lb, Location, Value m0, ValueRange carried) {
          scf::YieldOp::create(lb, loc,
                               storeRows(lb, carried[0], m0, rows, n));
        });
    return loop.getResult(0);
  }

  Value build(OpBuilder &b) const {
    auto inputType = cast<RankedTensorType>(input.getType());
    Value m = inputType.isDynamicDim(0)
                  ? tensor::DimOp::create(b, loc, input, 0).getResult()
                  : index(b, loc, inputType.getDimSize(0));
    auto resultType = RankedTensorType::get(
        {inputType.getDimSize(0), n}, b.getF32Type());
    SmallVector<Value> dynamicSizes;
    if (inputType.isDynamicDim(0))
      dynamicSizes.push_back(m);
    Value empty = tensor::EmptyOp::create(b, loc, resultType, dynamicSizes);

    // n outermost: the weight is streamed once; each row n is reused from
    // the cache by every tile of activation rows.
    int64_t tile = shape.rowTile;
    Value tiled = arith::SubIOp::create(
        b, loc, m, arith::RemUIOp::create(b, loc, m, index(b, loc, tile)));
    auto loop = scf::ForOp::create(
        b, loc, index(b, loc, 0), index(b, loc, n), index(b, loc, 1),
        ValueRange{empty},
        [&](OpBuilder &lb, Location, Value row, ValueRange carried) {
          Value y = carried[0];
          if (tile > 1)
            y = rowTiles(lb, y, index(lb, loc, 0), tiled, tile, row);
          y = rowTiles(lb, y, tile > 1 ? tiled : index(lb, loc, 0), m, 1, row);
          scf::YieldOp::create(lb, loc, y);
        });
    return loop.getResult(0);
  }
};

} // namespace

Value mlir::qnt::buildVectorMatmul(OpBuilder &b, Location loc, Value input,
                                   int64_t n, int64_t k,
                                   WeightRunBuilder weightRun,
                                   WeightElementBuilder weightElement,
                                   Value init, const VectorMatmulShape &shape) {
  VectorMatmulBuilder builder{loc,  input,         n,    k,
                              weightRun, weightElement, init, shape};
  return builder.build(b);
}
