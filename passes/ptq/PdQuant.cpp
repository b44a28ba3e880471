//===- PdQuant.cpp - PD-Quant block reconstruction ------------*- C++ -*-===//
//
// Implements qnt-pdquant: AdaRound's learned rounding with PD-Quant's
// prediction difference, learned activation clip ratios, QDrop's input
// mixing and the distribution correction (passes/ptq/LearnedRounding.h);
// the sequential driver trains each block (qnt/ptq/BlockReconstruction.h).
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"
#include "passes/ptq/WeightMethodPass.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"

namespace mlir::qnt {
#define GEN_PASS_DEF_QNTPDQUANT
#include "passes/Passes.h.inc"
} // namespace mlir::qnt

using namespace mlir;
using namespace mlir::qnt;

namespace {

struct QntPdQuantPass : mlir::qnt::impl::QntPdQuantBase<QntPdQuantPass>,
                        WeightMethodPass {
  using QntPdQuantBase::QntPdQuantBase;

  FailureOr<std::unique_ptr<WeightMethodDriver>>
  createDriver(ModuleOp module) const override {
    WeightMethodConfig config = QNT_WEIGHT_METHOD_CONFIG("qnt-pdquant");
    config.groupsAreBlocks = true;
    ReconstructionOptions options =
        QNT_RECONSTRUCTION_OPTIONS(LearnedRounding::AdaRound, config);
    options.roundingWeight = roundingWeight;
    options.betaStart = betaStart;
    options.betaEnd = betaEnd;
    options.warmup = warmup;
    options.activationLearningRate = activationLearningRate;
    options.predictionWeight = predictionWeight;
    options.temperature = temperature;
    options.quantizedInputProbability = quantizedInputProbability;
    options.distributionCorrection = distributionCorrection;
    options.correctionProximity = correctionProximity;
    options.correctionIterations = correctionIterations;
    options.correctionLearningRate = correctionLearningRate;
    config.reconstructionReadsFloatInputs =
        options.distributionCorrection || options.quantizedInputProbability < 1;
    return WeightMethodDriver::create(module, std::move(config), "pdquant",
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
