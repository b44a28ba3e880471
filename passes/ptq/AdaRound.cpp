//===- AdaRound.cpp - AdaRound block reconstruction -----------*- C++ -*-===//
//
// Implements qnt-adaround: the weight-method driver with a block
// reconstruction method (passes/ptq/LearnedRounding.h); the sequential
// driver trains each block (qnt/ptq/BlockReconstruction.h).
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"
#include "passes/ptq/WeightMethodPass.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"

namespace mlir::qnt {
#define GEN_PASS_DEF_QNTADAROUND
#include "passes/Passes.h.inc"
} // namespace mlir::qnt

using namespace mlir;
using namespace mlir::qnt;

namespace {

struct QntAdaRoundPass : mlir::qnt::impl::QntAdaRoundBase<QntAdaRoundPass>,
                       WeightMethodPass {
  using QntAdaRoundBase::QntAdaRoundBase;

  FailureOr<std::unique_ptr<WeightMethodDriver>>
  createDriver(ModuleOp module) const override {
    WeightMethodConfig config = QNT_WEIGHT_METHOD_CONFIG("qnt-adaround");
    config.groupsAreBlocks = true;
    ReconstructionOptions options =
        QNT_RECONSTRUCTION_OPTIONS(LearnedRounding::AdaRound, config);
    options.roundingWeight = roundingWeight;
    options.betaStart = betaStart;
    options.betaEnd = betaEnd;
    options.warmup = warmup;
    return WeightMethodDriver::create(module, std::move(config), "adaround",
                                      blockReconstructionMethod(options));
  }
  bool needsStatistics() const override { return true; }

  void runOnOperation() override {
    FailureOr<size_t> quantized = quantizeModule(getOperation());
    if (failed(quantized))
      return signalPassFailure();
    numQuantized = *quantized;
  }
};

} // namespace
