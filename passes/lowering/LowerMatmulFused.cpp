//===- LowerMatmulFused.cpp - qnt.matmul to one fused loop nest -*- C++ -*-===//
//
// Implements qnt-lower-matmul-fused: qnt.matmul becomes one linalg.generic
// over (m, n, k) whose body dequantizes W[n, k] in registers, so the loops
// it lowers to never materialize the float weight.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"
#include "passes/lowering/DequantLowering.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Transforms/DialectConversion.h"

namespace mlir::qnt {
#define GEN_PASS_DEF_QNTLOWERMATMULFUSED
#include "passes/Passes.h.inc"
} // namespace mlir::qnt

using namespace mlir;
using namespace mlir::qnt;

namespace {

struct LowerMatmulToFusedGeneric : OpConversionPattern<MatmulOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(MatmulOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    rewriter.replaceOp(op, buildFusedMatmul(rewriter, op.getLoc(),
                                            op.getEncoding(),
                                            adaptor.getInput(),
                                            adaptor.getComponents(),
                                            op.getType()));
    return success();
  }
};

struct QntLowerMatmulFusedPass
    : mlir::qnt::impl::QntLowerMatmulFusedBase<QntLowerMatmulFusedPass> {
  void runOnOperation() override {
    ConversionTarget target(getContext());
    target.addIllegalOp<MatmulOp>();
    target.markUnknownOpDynamicallyLegal([](Operation *) { return true; });
    RewritePatternSet patterns(&getContext());
    patterns.add<LowerMatmulToFusedGeneric>(&getContext());
    if (failed(applyPartialConversion(getOperation(), target,
                                      std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
