//===- LowerMatmulCpu.cpp - matmuls to CPU vector kernels -------*- C++ -*-===//
//
// Implements qnt-lower-matmul-cpu: qnt.matmul, and the dense f32
// transpose-B linalg.matmul of float linears, become the vector kernels of
// VectorMatmul.h (or, with strategy=loops, the scalar loop nest of
// qnt-lower-matmul-fused).
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"
#include "passes/lowering/DequantLowering.h"
#include "passes/lowering/VectorMatmul.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Transforms/DialectConversion.h"
#include "llvm/TargetParser/Host.h"

namespace mlir::qnt {
#define GEN_PASS_DEF_QNTLOWERMATMULCPU
#include "passes/Passes.h.inc"
} // namespace mlir::qnt

using namespace mlir;
using namespace mlir::qnt;

int64_t mlir::qnt::hostVectorWidth() {
  llvm::StringMap<bool> features = llvm::sys::getHostCPUFeatures();
  if (features.lookup("avx512f"))
    return 16;
  if (features.lookup("avx"))
    return 8;
  return 4;
}

namespace {

struct LowerQntMatmul : OpConversionPattern<MatmulOp> {
  LowerQntMatmul(MLIRContext *ctx, CpuMatmulStrategy strategy,
                 VectorMatmulShape shape)
      : OpConversionPattern(ctx), strategy(strategy), shape(shape) {}

  LogicalResult
  matchAndRewrite(MatmulOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Value result =
        strategy == CpuMatmulStrategy::Vector
            ? buildVectorFusedMatmul(rewriter, op.getLoc(), op.getEncoding(),
                                     adaptor.getInput(),
                                     adaptor.getComponents(), op.getType(),
                                     shape)
            : buildFusedMatmul(rewriter, op.getLoc(), op.getEncoding(),
                               adaptor.getInput(), adaptor.getComponents(),
                               op.getType());
    rewriter.replaceOp(op, result);
    return success();
  }

  CpuMatmulStrategy strategy;
  VectorMatmulShape shape;
};

/// Whether `op` is `x[M, K] * W[N, K]^T` accumulated into its init, with
/// static N and K and f32 tensors throughout.
bool isDenseTransposeB(linalg::MatmulOp op) {
  if (!op.hasPureTensorSemantics() || op.getNumDpsInputs() != 2)
    return false;
  MLIRContext *ctx = op.getContext();
  AffineExpr m, n, k;
  bindDims(ctx, m, n, k);
  SmallVector<AffineMap> expected = {AffineMap::get(3, 0, {m, k}, ctx),
                                     AffineMap::get(3, 0, {n, k}, ctx),
                                     AffineMap::get(3, 0, {m, n}, ctx)};
  if (op.getIndexingMapsArray() != ArrayRef<AffineMap>(expected))
    return false;
  auto x = dyn_cast<RankedTensorType>(op.getDpsInputs()[0].getType());
  auto w = dyn_cast<RankedTensorType>(op.getDpsInputs()[1].getType());
  auto y = dyn_cast<RankedTensorType>(op.getDpsInits()[0].getType());
  if (!x || !w || !y || !w.hasStaticShape() || x.isDynamicDim(1))
    return false;
  return llvm::all_of(TypeRange{x, w, y}, [](Type t) {
    return cast<RankedTensorType>(t).getElementType().isF32();
  });
}

struct LowerDenseMatmul : OpRewritePattern<linalg::MatmulOp> {
  LowerDenseMatmul(MLIRContext *ctx, VectorMatmulShape shape)
      : OpRewritePattern(ctx), shape(shape) {}

  LogicalResult matchAndRewrite(linalg::MatmulOp op,
                                PatternRewriter &rewriter) const override {
    if (!isDenseTransposeB(op))
      return rewriter.notifyMatchFailure(op, "not a dense f32 x * W^T");
    Location loc = op.getLoc();
    Value x = op.getDpsInputs()[0], w = op.getDpsInputs()[1];
    auto wType = cast<RankedTensorType>(w.getType());
    auto run = [&](OpBuilder &b, Location l, Value n, Value k, int64_t width) {
      return readRun(b, l, w, {n, k}, width);
    };
    auto element = [&](OpBuilder &b, Location l, Value n, Value k) {
      return tensor::ExtractOp::create(b, l, w, ValueRange{n, k}).getResult();
    };
    Value y = buildVectorMatmul(rewriter, loc, x, wType.getDimSize(0),
                                wType.getDimSize(1), run, element,
                                op.getDpsInits()[0], shape);
    rewriter.replaceOp(op, y);
    return success();
  }

  VectorMatmulShape shape;
};

struct QntLowerMatmulCpuPass
    : mlir::qnt::impl::QntLowerMatmulCpuBase<QntLowerMatmulCpuPass> {
  using Base::Base;

  void runOnOperation() override {
    if (vectorWidth < 0 || unroll < 1 || rowTile < 1 || colTile < 1 ||
        threads < 0) {
      getOperation().emitError()
          << "qnt-lower-matmul-cpu: vector-width and threads must be >= 0, "
             "unroll, row-tile and col-tile >= 1";
      return signalPassFailure();
    }
    VectorMatmulShape shape;
    int64_t lanes = hostVectorWidth();
    // Two registers per run by default: one wide load of packed codes then
    // fills both (16 bytes of 4-bit codes are 32 lanes).
    shape.vectorWidth = vectorWidth ? int64_t(vectorWidth) : 2 * lanes;
    shape.unroll = unroll;
    shape.rowTile = rowTile;
    shape.colTile = colTile;
    shape.parallel = threads != 1;
    shape.parallelWeights = parallelWeights;
    // Accumulators may take three quarters of the registers (32 with
    // AVX-512, else 16); the rest hold weight and input runs.
    int64_t registers = lanes == 16 ? 32 : 16;
    int64_t perRun = (shape.vectorWidth + lanes - 1) / lanes;
    shape.accumulators = std::max<int64_t>(1, registers * 3 / 4 / perRun);

    MLIRContext *ctx = &getContext();
    ConversionTarget target(*ctx);
    target.addIllegalOp<MatmulOp>();
    bool vector = strategy == CpuMatmulStrategy::Vector;
    if (vector && dense)
      target.addDynamicallyLegalOp<linalg::MatmulOp>(
          [](linalg::MatmulOp op) { return !isDenseTransposeB(op); });
    target.markUnknownOpDynamicallyLegal([](Operation *) { return true; });
    RewritePatternSet patterns(ctx);
    patterns.add<LowerQntMatmul>(ctx, strategy, shape);
    if (vector && dense)
      patterns.add<LowerDenseMatmul>(ctx, shape);
    if (failed(applyPartialConversion(getOperation(), target,
                                      std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
