//===- LowerToLinalg.cpp - qnt compute ops to reference linalg --*- C++ -*-===//
//
// Implements qnt-lower-to-linalg: the executable reference semantics of
// qnt.dequant, qnt.matmul, qnt.smooth, qnt.lowrank_add and qnt.fake_quant.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"
#include "passes/lowering/DequantLowering.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Transforms/DialectConversion.h"

namespace mlir::qnt {
#define GEN_PASS_DEF_QNTLOWERTOLINALG
#include "passes/Passes.h.inc"
} // namespace mlir::qnt

using namespace mlir;
using namespace mlir::qnt;

namespace {

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

/// Map from a rank-`rank` iteration to its last dimension only.
static AffineMap lastDimMap(OpBuilder &b, int64_t rank) {
  return AffineMap::get(rank, 0, b.getAffineDimExpr(rank - 1), b.getContext());
}

/// Map from a rank-`rank` iteration to all dimensions but the last.
static AffineMap dropLastDimMap(OpBuilder &b, int64_t rank) {
  return AffineMap::getMultiDimIdentityMap(rank, b.getContext())
      .getMajorSubMap(rank - 1);
}

/// Reduces abs(`x`) (f32) with max over the dimensions that `outMap` drops,
/// into a tensor of `outShape`.
static Value buildAbsMax(OpBuilder &b, Location loc, Value x,
                         ArrayRef<int64_t> outShape, AffineMap outMap) {
  auto type = cast<RankedTensorType>(x.getType());
  Value init = buildZeroTensor(
      b, loc, RankedTensorType::get(outShape, b.getF32Type()), x);
  SmallVector<utils::IteratorType> iterators;
  for (int64_t d = 0; d < type.getRank(); ++d)
    iterators.push_back(outMap.isFunctionOfDim(d)
                            ? utils::IteratorType::parallel
                            : utils::IteratorType::reduction);
  SmallVector<AffineMap> maps = {b.getMultiDimIdentityMap(type.getRank()),
                                 outMap};
  return linalg::GenericOp::create(
             b, loc, init.getType(), x, init, maps, iterators,
             [](OpBuilder &nb, Location nloc, ValueRange args) {
               Value mag = math::AbsFOp::create(nb, nloc, args[0]);
               linalg::YieldOp::create(
                   nb, nloc,
                   arith::MaximumFOp::create(nb, nloc, args[1], mag)
                       .getResult());
             })
      .getResult(0);
}

/// scale = absmax / qmax, or 1 where absmax is 0 (an all-zero row must not
/// divide by zero; any scale reproduces it exactly).
static Value scaleFromAbsMax(OpBuilder &b, Location loc, Value absMax,
                             double qmax) {
  Value zero = arith::ConstantOp::create(b, loc, b.getF32FloatAttr(0.0f));
  Value one = arith::ConstantOp::create(b, loc, b.getF32FloatAttr(1.0f));
  Value q = arith::ConstantOp::create(b, loc, b.getF32FloatAttr(qmax));
  Value isZero = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ,
                                       absMax, zero);
  return arith::SelectOp::create(b, loc, isZero, one,
                                 arith::DivFOp::create(b, loc, absMax, q));
}

//===----------------------------------------------------------------------===//
// Patterns
//===----------------------------------------------------------------------===//

struct LowerDequant : OpConversionPattern<DequantOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(DequantOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    rewriter.replaceOp(op, buildDequantizedWeight(
                               rewriter, op.getLoc(), op.getEncoding(),
                               adaptor.getComponents(), op.getType()));
    return success();
  }
};

/// y = x * dequant(W)^T as a materialized f32 weight and a transpose-B
/// linalg.matmul: the reference the fused lowerings are checked against.
struct LowerMatmul : OpConversionPattern<MatmulOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(MatmulOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Type f32 = rewriter.getF32Type();
    SmallVector<int64_t, 2> weightShape = op.getWeightShape();
    Value weight = buildDequantizedWeight(
        rewriter, loc, op.getEncoding(), adaptor.getComponents(),
        RankedTensorType::get(weightShape, f32));
    Value input = convertElementType(rewriter, loc, adaptor.getInput(), f32);
    RankedTensorType resultType = op.getType().clone(f32);
    Value acc = buildZeroTensor(rewriter, loc, resultType, input);
    Value product = linalg::MatmulTransposeBOp::create(
                        rewriter, loc, TypeRange{resultType},
                        ValueRange{input, weight}, ValueRange{acc})
                        .getResult(0);
    rewriter.replaceOp(op, convertElementType(rewriter, loc, product,
                                              op.getType().getElementType()));
    return success();
  }
};

/// result[..., k] = input[..., k] / factors[k].
struct LowerSmooth : OpConversionPattern<SmoothOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(SmoothOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType type = op.getType();
    int64_t rank = type.getRank();
    Value empty = buildEmpty(rewriter, loc, type, adaptor.getInput());
    SmallVector<AffineMap> maps = {rewriter.getMultiDimIdentityMap(rank),
                                   lastDimMap(rewriter, rank),
                                   rewriter.getMultiDimIdentityMap(rank)};
    SmallVector<utils::IteratorType> iterators(rank,
                                               utils::IteratorType::parallel);
    auto generic = linalg::GenericOp::create(
        rewriter, loc, type, ValueRange{adaptor.getInput(), adaptor.getFactors()},
        empty, maps, iterators,
        [](OpBuilder &nb, Location nloc, ValueRange args) {
          linalg::YieldOp::create(
              nb, nloc,
              arith::DivFOp::create(nb, nloc, args[0], args[1]).getResult());
        });
    rewriter.replaceOp(op, generic.getResult(0));
    return success();
  }
};

/// acc + (input * v) * u^T as two skinny matmuls and an add.
struct LowerLowRankAdd : OpConversionPattern<LowRankAddOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(LowRankAddOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType accType = op.getType();
    auto vType = cast<RankedTensorType>(adaptor.getV().getType());
    auto projectedType = RankedTensorType::get(
        {accType.getDimSize(0), vType.getDimSize(1)}, accType.getElementType());
    Value projected =
        linalg::MatmulOp::create(
            rewriter, loc, TypeRange{projectedType},
            ValueRange{adaptor.getInput(), adaptor.getV()},
            ValueRange{buildZeroTensor(rewriter, loc, projectedType,
                                                  adaptor.getInput())})
            .getResult(0);
    Value correction =
        linalg::MatmulTransposeBOp::create(
            rewriter, loc, TypeRange{accType},
            ValueRange{projected, adaptor.getU()},
            ValueRange{buildZeroTensor(rewriter, loc, accType,
                                                  adaptor.getAcc())})
            .getResult(0);
    Value sum = linalg::AddOp::create(
                    rewriter, loc, TypeRange{accType},
                    ValueRange{adaptor.getAcc(), correction},
                    ValueRange{buildEmpty(rewriter, loc, accType,
                                          adaptor.getAcc())})
                    .getResult(0);
    rewriter.replaceOp(op, sum);
    return success();
  }
};

/// s * clamp(roundeven((x + noise) / s), qmin, qmax) in f32, with s static,
/// per tensor or per token (see FakeQuantOp's description).
struct LowerFakeQuant : OpConversionPattern<FakeQuantOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(FakeQuantOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType type = op.getType();
    int64_t rank = type.getRank();
    Type f32 = rewriter.getF32Type();
    double qmax = double((int64_t(1) << (op.getBits() - 1)) - 1);
    double qmin = -qmax - 1;

    Value x = convertElementType(rewriter, loc, adaptor.getInput(), f32);
    if (Value noise = adaptor.getNoise())
      x = addNoise(rewriter, loc, x,
                   convertElementType(rewriter, loc, noise, f32));

    // A scalar scale, or a per-token scale tensor read through a map; a
    // run-time scale is multiplied by the clip ratio when there is one.
    Value scalarScale, tokenScales, clip;
    if (Value clipTensor = adaptor.getClip()) {
      auto clipType = cast<RankedTensorType>(clipTensor.getType());
      SmallVector<Value> zeros(
          clipType.getRank(), arith::ConstantIndexOp::create(rewriter, loc, 0));
      clip = tensor::ExtractOp::create(rewriter, loc, clipTensor, zeros);
    }
    auto clipped = [&](OpBuilder &b, Location l, Value scale) -> Value {
      return clip ? arith::MulFOp::create(b, l, scale, clip).getResult()
                  : scale;
    };
    if (Value scale = adaptor.getScale()) {
      auto scaleType = cast<RankedTensorType>(scale.getType());
      SmallVector<Value> zeros(
          scaleType.getRank(), arith::ConstantIndexOp::create(rewriter, loc, 0));
      scalarScale = tensor::ExtractOp::create(rewriter, loc, scale, zeros);
    } else if (op.getGranularity() == ActivationGranularity::per_tensor) {
      Value absMax = buildAbsMax(
          rewriter, loc, x, {},
          AffineMap::get(rank, 0, {}, rewriter.getContext()));
      scalarScale = clipped(
          rewriter, loc,
          scaleFromAbsMax(rewriter, loc,
                          tensor::ExtractOp::create(rewriter, loc, absMax),
                          qmax));
    } else {
      tokenScales = buildAbsMax(rewriter, loc, x, type.getShape().drop_back(),
                                dropLastDimMap(rewriter, rank));
    }

    SmallVector<Value> inputs = {x};
    SmallVector<AffineMap> maps = {rewriter.getMultiDimIdentityMap(rank)};
    if (tokenScales) {
      inputs.push_back(tokenScales);
      maps.push_back(dropLastDimMap(rewriter, rank));
    }
    maps.push_back(rewriter.getMultiDimIdentityMap(rank));
    Value empty = buildEmpty(rewriter, loc, type.clone(f32), x);
    SmallVector<utils::IteratorType> iterators(rank,
                                               utils::IteratorType::parallel);
    auto generic = linalg::GenericOp::create(
        rewriter, loc, empty.getType(), inputs, empty, maps, iterators,
        [&](OpBuilder &nb, Location nloc, ValueRange args) {
          Value scale =
              scalarScale
                  ? scalarScale
                  : clipped(nb, nloc, scaleFromAbsMax(nb, nloc, args[1], qmax));
          Value q = math::RoundEvenOp::create(
              nb, nloc, arith::DivFOp::create(nb, nloc, args[0], scale));
          Value lo = arith::ConstantOp::create(nb, nloc, nb.getF32FloatAttr(qmin));
          Value hi = arith::ConstantOp::create(nb, nloc, nb.getF32FloatAttr(qmax));
          q = arith::MinimumFOp::create(
              nb, nloc, arith::MaximumFOp::create(nb, nloc, q, lo), hi);
          linalg::YieldOp::create(
              nb, nloc, arith::MulFOp::create(nb, nloc, q, scale).getResult());
        });
    rewriter.replaceOp(op, convertElementType(rewriter, loc,
                                              generic.getResult(0),
                                              type.getElementType()));
    return success();
  }

  /// x[..., k] + noise[k].
  static Value addNoise(OpBuilder &b, Location loc, Value x, Value noise) {
    auto type = cast<RankedTensorType>(x.getType());
    int64_t rank = type.getRank();
    Value empty = buildEmpty(b, loc, type, x);
    SmallVector<AffineMap> maps = {b.getMultiDimIdentityMap(rank),
                                   lastDimMap(b, rank),
                                   b.getMultiDimIdentityMap(rank)};
    SmallVector<utils::IteratorType> iterators(rank,
                                               utils::IteratorType::parallel);
    return linalg::GenericOp::create(
               b, loc, type, ValueRange{x, noise}, empty, maps, iterators,
               [](OpBuilder &nb, Location nloc, ValueRange args) {
                 linalg::YieldOp::create(
                     nb, nloc,
                     arith::AddFOp::create(nb, nloc, args[0], args[1])
                         .getResult());
               })
        .getResult(0);
  }
};

//===----------------------------------------------------------------------===//
// Pass
//===----------------------------------------------------------------------===//

struct QntLowerToLinalgPass
    : mlir::qnt::impl::QntLowerToLinalgBase<QntLowerToLinalgPass> {
  void runOnOperation() override {
    if (failed(lowerQntOpsToLinalg(getOperation(),
                                   [](Operation *) { return true; })))
      signalPassFailure();
  }
};

} // namespace

LogicalResult
mlir::qnt::lowerQntOpsToLinalg(Operation *root,
                               function_ref<bool(Operation *)> select) {
  MLIRContext *context = root->getContext();
  ConversionTarget target(*context);
  target.addDynamicallyLegalOp<DequantOp, MatmulOp, SmoothOp, LowRankAddOp,
                               FakeQuantOp>(
      [&](Operation *op) { return !select(op); });
  target.markUnknownOpDynamicallyLegal([](Operation *) { return true; });
  RewritePatternSet patterns(context);
  patterns.add<LowerDequant, LowerMatmul, LowerSmooth, LowerLowRankAdd,
               LowerFakeQuant>(context);
  return applyPartialConversion(root, target, std::move(patterns));
}
