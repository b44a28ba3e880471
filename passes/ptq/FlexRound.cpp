//===- FlexRound.cpp - FlexRound block reconstruction ---------*- C++ -*-===//
//
// Implements qnt-flexround: the weight-method driver with a block
// reconstruction method (passes/ptq/LearnedRounding.h); the sequential
// driver trains each block (qnt/ptq/BlockReconstruction.h).
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"
#include "passes/ptq/WeightMethodPass.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"

namespace mlir::qnt {
#define GEN_PASS_DEF_QNTFLEXROUND
#include "passes/Passes.h.inc"
} // namespace mlir::qnt

using namespace mlir;
using namespace mlir::qnt;

namespace {

struct QntFlexRoundPass : mlir::qnt::impl::QntFlexRoundBase<QntFlexRoundPass>,
                       WeightMethodPass {
  using QntFlexRoundBase::QntFlexRoundBase;

  FailureOr<std::unique_ptr<WeightMethodDriver>>
  createDriver(ModuleOp module) const override {
    WeightMethodConfig config = QNT_WEIGHT_METHOD_CONFIG("qnt-flexround");
    config.groupsAreBlocks = true;
    ReconstructionOptions options =
        QNT_RECONSTRUCTION_OPTIONS(LearnedRounding::FlexRound, config);
    return WeightMethodDriver::create(module, std::move(config), "flexround",
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
