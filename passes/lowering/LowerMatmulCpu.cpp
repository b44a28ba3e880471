//===- LowerMatmulCpu.cpp - matmuls to CPU vector kernels -------*- C++ -*-===//
//
// Implements qnt-lower-matmul-cpu: qnt.matmul, and the dense f32
// transpose-B linalg.matmul of float linears, become the vector kernels of
// VectorMatmul.h (or, with strategy=loops, the scalar loop nest of
// qnt-lower-matmul-fused).
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"
#include "passes/lowering/CodebookLutMatmul.h"
#include "passes/lowering/DequantLowering.h"
#include "passes/lowering/Int8Matmul.h"
#include "passes/lowering/SalientMatmul.h"
#include "passes/lowering/VectorMatmul.h"

#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Transforms/DialectConversion.h"
#include "llvm/Support/Threading.h"
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

/// How the quantized matmuls are lowered.
struct QntMatmulLowering {
  CpuMatmulStrategy strategy;
  VectorMatmulShape shape;
  /// Set for activations=int8: the instructions and the tile shape of the
  /// int8 kernel.
  std::optional<Int8DotInstructions> int8;
  VectorMatmulShape int8Shape;
  /// Most activation rows of the codebook lookup-table kernel (0: not
  /// used), and the parts its row tiles are split into for threads.
  int64_t lutMaxRows = 0;
  int64_t lutParts = 1;
  int64_t lutPrefetchBytes = 0;
};

struct LowerQntMatmul : OpConversionPattern<MatmulOp> {
  LowerQntMatmul(MLIRContext *ctx, QntMatmulLowering lowering)
      : OpConversionPattern(ctx), lowering(lowering) {}

  /// The int8 kernel of `op`, when asked for and the encoding has an
  /// integer form that kernel runs.
  Value buildInt8(MatmulOp op, OpAdaptor adaptor, OpBuilder &b) const {
    if (!lowering.int8 || lowering.strategy != CpuMatmulStrategy::Vector)
      return {};
    RankedTensorType type = op.getType();
    int64_t n = type.getDimSize(1);
    int64_t k = cast<RankedTensorType>(op.getInput().getType()).getDimSize(1);
    std::optional<IntegerWeightForm> form =
        op.getEncoding().getIntegerForm(n, k);
    if (!form || !int8KernelLimitation(*form, k).empty())
      return {};
    Value y = buildInt8Matmul(b, op.getLoc(), adaptor.getInput(),
                              adaptor.getComponents(), *form, n, k,
                              lowering.int8Shape, *lowering.int8);
    return convertElementType(b, op.getLoc(), y, type.getElementType());
  }

  /// The f32-activation kernel of `op`.
  Value buildFloat(MatmulOp op, OpAdaptor adaptor, OpBuilder &b) const {
    return lowering.strategy == CpuMatmulStrategy::Vector
               ? buildVectorFusedMatmul(b, op.getLoc(), op.getEncoding(),
                                        adaptor.getInput(),
                                        adaptor.getComponents(), op.getType(),
                                        lowering.shape)
               : buildFusedMatmul(b, op.getLoc(), op.getEncoding(),
                                  adaptor.getInput(), adaptor.getComponents(),
                                  op.getType());
  }

  /// The codebook lookup-table kernel of `op` when it applies: for a
  /// dynamic M, an scf.if that takes it up to lutMaxRows rows and the f32
  /// kernel above.
  Value buildLut(MatmulOp op, OpAdaptor adaptor, OpBuilder &b) const {
    auto codebook = dyn_cast<CodebookEncodingAttr>(op.getEncoding());
    if (!lowering.int8 || lowering.strategy != CpuMatmulStrategy::Vector ||
        lowering.lutMaxRows < 1 || !codebook ||
        !codebookLutLimitation(codebook).empty())
      return {};
    Location loc = op.getLoc();
    RankedTensorType type = op.getType();
    int64_t n = type.getDimSize(1);
    auto inputType = cast<RankedTensorType>(op.getInput().getType());
    int64_t k = inputType.getDimSize(1);
    int64_t parts =
        n * k >= lowering.shape.parallelWeights ? lowering.lutParts : 1;
    auto lut = [&](OpBuilder &nb) {
      Value y = buildCodebookLutMatmul(
          nb, loc, adaptor.getInput(), adaptor.getComponents(), codebook, n,
          k, parts, lowering.lutPrefetchBytes);
      return convertElementType(nb, loc, y, type.getElementType());
    };
    if (!inputType.isDynamicDim(0))
      return inputType.getDimSize(0) <= lowering.lutMaxRows ? lut(b)
                                                             : Value();
    Value rows = tensor::DimOp::create(b, loc, adaptor.getInput(), 0);
    Value small = arith::CmpIOp::create(
        b, loc, arith::CmpIPredicate::ule, rows,
        arith::ConstantIndexOp::create(b, loc, lowering.lutMaxRows));
    auto ifOp = scf::IfOp::create(
        b, loc, small,
        [&](OpBuilder &tb, Location) {
          scf::YieldOp::create(tb, loc, lut(tb));
        },
        [&](OpBuilder &eb, Location) {
          scf::YieldOp::create(eb, loc, buildFloat(op, adaptor, eb));
        });
    return ifOp.getResult(0);
  }

  /// The two-kernel form of a salient-channel weight (f32 throughout):
  /// each part's own vector form instead of a dispatch per lane.
  Value buildSalient(MatmulOp op, OpAdaptor adaptor, OpBuilder &b) const {
    auto salient = dyn_cast<SalientEncodingAttr>(op.getEncoding());
    auto inputType = cast<RankedTensorType>(op.getInput().getType());
    if (!salient || lowering.strategy != CpuMatmulStrategy::Vector ||
        !inputType.getElementType().isF32() ||
        !op.getType().getElementType().isF32())
      return {};
    int64_t n = op.getType().getDimSize(1), k = inputType.getDimSize(1);
    if (salient.getNumSalient() >= k)
      return {};
    return buildSalientSplitMatmul(b, op.getLoc(), adaptor.getInput(),
                                   adaptor.getComponents(), salient, n, k,
                                   lowering.shape);
  }

  LogicalResult
  matchAndRewrite(MatmulOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Value result = buildLut(op, adaptor, rewriter);
    if (!result)
      result = buildInt8(op, adaptor, rewriter);
    if (!result)
      result = buildSalient(op, adaptor, rewriter);
    if (!result)
      result = buildFloat(op, adaptor, rewriter);
    rewriter.replaceOp(op, result);
    return success();
  }

  QntMatmulLowering lowering;
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

  /// The instructions int8-dot asks for; auto takes the most the host has.
  Int8DotInstructions int8DotInstructions() const {
    switch (int8Dot) {
    case CpuInt8Dot::Vbmi:
      return Int8DotInstructions::Vbmi;
    case CpuInt8Dot::Vnni:
      return Int8DotInstructions::Vnni;
    case CpuInt8Dot::Generic:
      return Int8DotInstructions::Generic;
    case CpuInt8Dot::Auto:
      break;
    }
    if (!hostHasVnni())
      return Int8DotInstructions::Generic;
    return hostHasVbmi() ? Int8DotInstructions::Vbmi
                         : Int8DotInstructions::Vnni;
  }

  void runOnOperation() override {
    if (vectorWidth < 0 || unroll < 1 || rowTile < 1 || colTile < 1 ||
        threads < 0 || prefetch < -1 || lutMaxRows < 0) {
      getOperation().emitError()
          << "qnt-lower-matmul-cpu: vector-width, threads and lut-max-rows "
             "must be >= 0, prefetch >= -1, unroll, row-tile and col-tile "
             ">= 1";
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

    QntMatmulLowering lowering{strategy, shape, std::nullopt, shape};
    if (activations == CpuActivations::Int8) {
      lowering.int8 = int8DotInstructions();
      // Each (row, weight row) pair holds an i32 and an f32 register; a
      // quarter of the registers each. Unless told otherwise, one weight
      // row at a time, so that the codes stream through memory in order
      // (measured: tiles of 2 or 4 rows of 2 KiB interleave streams and
      // run 1.3-2x slower), all 8 activation rows of a decode batch
      // sharing each unpacked chunk, and 4 scale groups per loop iteration
      // (measured at M = 1: 19-22 GB/s with 1, 32-36 GB/s with 4).
      lowering.int8Shape.accumulators = registers / 4;
      if (!colTile.hasValue())
        lowering.int8Shape.colTile = 1;
      if (!rowTile.hasValue())
        lowering.int8Shape.rowTile = 8;
      if (!unroll.hasValue())
        lowering.int8Shape.unroll = 4;
      lowering.int8Shape.prefetchBytes = prefetch;
      // The lookup-table kernel needs VBMI's byte permutes (no generic
      // form). Its row tiles are split into one part per thread (measured
      // at 4096 x 14336 on two threads: 2 parts 0.49-0.64 ms, 4 parts 0.68,
      // 16 parts 0.78: each part streams longer runs of codes per group
      // tile).
      if (lowering.int8 == Int8DotInstructions::Vbmi) {
        lowering.lutMaxRows = lutMaxRows;
        // Measured at 4096 x 14336, M = 1, 3 rounds: codes prefetched 2 KiB
        // ahead (half a tile of 128 x 16) 15-17 -> 18-24 GB/s on one thread
        // and 27-30 -> 34-37 on two; 4 and 8 KiB gained less.
        lowering.lutPrefetchBytes = prefetch < 0 ? 2048 : int64_t(prefetch);
        lowering.lutParts =
            threads ? int64_t(threads)
                    : int64_t(llvm::hardware_concurrency().compute_thread_count());
      }
    }

    MLIRContext *ctx = &getContext();
    ConversionTarget target(*ctx);
    target.addIllegalOp<MatmulOp>();
    bool vector = strategy == CpuMatmulStrategy::Vector;
    if (vector && dense)
      target.addDynamicallyLegalOp<linalg::MatmulOp>(
          [](linalg::MatmulOp op) { return !isDenseTransposeB(op); });
    target.markUnknownOpDynamicallyLegal([](Operation *) { return true; });
    RewritePatternSet patterns(ctx);
    patterns.add<LowerQntMatmul>(ctx, lowering);
    if (vector && dense)
      patterns.add<LowerDenseMatmul>(ctx, shape);
    if (failed(applyPartialConversion(getOperation(), target,
                                      std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
