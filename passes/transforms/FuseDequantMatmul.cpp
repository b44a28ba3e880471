//===- FuseDequantMatmul.cpp - dequant + matmul -> qnt.matmul ---*- C++ -*-===//
//
// Implements qnt-fuse-dequant-matmul.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/IR/Matchers.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::qnt {
#define GEN_PASS_DEF_QNTFUSEDEQUANTMATMUL
#include "passes/Passes.h.inc"
} // namespace mlir::qnt

using namespace mlir;
using namespace mlir::qnt;

namespace {

/// True if `value` is a tensor filled with +0.0 by linalg.fill.
static bool isZeroFilled(Value value) {
  auto fill = value.getDefiningOp<linalg::FillOp>();
  return fill && matchPattern(fill.getInputs()[0], m_AnyZeroFloat());
}

/// The dequantization producing the [N, K] weight of `op`: its B operand for
/// a transpose-B matmul, the source of a [1, 0] linalg.transpose for a
/// plain one.
static DequantOp findWeightDequant(linalg::MatmulOp op) {
  Value weight = op.getInputs()[1];
  if (isa<linalg::MatmulTransposeBOp>(op.getOperation()))
    return weight.getDefiningOp<DequantOp>();
  if (op.hasUserDefinedMaps())
    return nullptr;
  auto transpose = weight.getDefiningOp<linalg::TransposeOp>();
  if (!transpose || transpose.getPermutation() != ArrayRef<int64_t>{1, 0})
    return nullptr;
  return transpose.getInput().getDefiningOp<DequantOp>();
}

struct FuseDequantIntoMatmul : OpRewritePattern<linalg::MatmulOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(linalg::MatmulOp op,
                                PatternRewriter &rewriter) const override {
    if (!op.hasPureTensorSemantics())
      return rewriter.notifyMatchFailure(op, "needs tensor semantics");
    if (!isZeroFilled(op.getOutputs()[0]))
      return rewriter.notifyMatchFailure(op, "accumulator is not zero");
    DequantOp dequant = findWeightDequant(op);
    if (!dequant)
      return rewriter.notifyMatchFailure(op, "weight is not a dequantization");
    Value input = op.getInputs()[0];
    auto resultType = cast<RankedTensorType>(op.getResultTypes()[0]);
    Type elementType = resultType.getElementType();
    if (cast<ShapedType>(input.getType()).getElementType() != elementType ||
        dequant.getType().getElementType() != elementType)
      return rewriter.notifyMatchFailure(op, "mixed element types");
    rewriter.replaceOpWithNewOp<MatmulOp>(op, resultType, input,
                                          dequant.getEncoding(),
                                          dequant.getComponents());
    return success();
  }
};

struct QntFuseDequantMatmulPass
    : mlir::qnt::impl::QntFuseDequantMatmulBase<QntFuseDequantMatmulPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<FuseDequantIntoMatmul>(&getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
