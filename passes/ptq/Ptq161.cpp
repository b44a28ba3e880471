//===- Ptq161.cpp - PTQ1.61 salient channels and binarized rest -*- C++ -*-===//
//
// Implements qnt-ptq161: the weight-method driver with PTQ1.61's starting
// point (numerics::runPtq161Initialization: the salient mask from the
// activation absmax, 4-bit salient channels and the binarized rest) and,
// with epochs > 0, its block training by the sequential driver's trainer
// (qnt/ptq/BlockReconstruction.h with LearnedRounding::
// SalientBinarization).
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"
#include "passes/ptq/WeightMethodPass.h"
#include "qnt/numerics/Ptq161.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"

namespace mlir::qnt {
#define GEN_PASS_DEF_QNTPTQ161
#include "passes/Passes.h.inc"
} // namespace mlir::qnt

using namespace mlir;
using namespace mlir::qnt;
namespace nx = ::qnt::numerics;

namespace {

struct QntPtq161Pass : mlir::qnt::impl::QntPtq161Base<QntPtq161Pass>,
                       WeightMethodPass {
  using QntPtq161Base::QntPtq161Base;

  FailureOr<std::unique_ptr<WeightMethodDriver>>
  createDriver(ModuleOp module) const override {
    if (!(ratio >= 0 && ratio < 1))
      return module.emitError("qnt-ptq161: ratio must be in [0, 1), got ")
             << double(ratio);
    if (salientBits < 2 || salientBits > 8)
      return module.emitError("qnt-ptq161: salient-bits must be in 2..8, got ")
             << int64_t(salientBits);
    if (epochs < 0 || batchSequences < 1 || !(learningRate > 0) ||
        !(rescaleLearningRate > 0))
      return module.emitError("qnt-ptq161: epochs must be >= 0, "
                              "batch-sequences >= 1, lr and rescale-lr > 0");
    WeightMethodConfig config = QNT_WEIGHT_METHOD_CONFIG("qnt-ptq161");
    config.needsStatistics = true;
    if (epochs > 0) {
      config.groupsAreBlocks = true;
      ReconstructionOptions options;
      options.method = LearnedRounding::SalientBinarization;
      options.epochs = epochs;
      options.batchSequences = batchSequences;
      options.seed = seed;
      options.learningRate = learningRate;
      options.rescaleLearningRate = rescaleLearningRate;
      options.salientRatio = ratio;
      options.salientBits = salientBits;
      options.salientErrorFeedback = errorFeedback;
      options.predictionWeight = predictionWeight;
      options.temperature = temperature;
      options.activationBits = config.actBits;
      options.activationPerToken = config.actPerToken;
      return WeightMethodDriver::create(module, std::move(config), "ptq161",
                                        blockReconstructionMethod(options));
    }
    double r = ratio;
    int bits = salientBits;
    bool feedback = errorFeedback;
    return WeightMethodDriver::create(
        module, std::move(config), "ptq161",
        [r, bits, feedback](const LayerSettings &settings,
                  const nx::WeightProblem &problem) {
          if (!settings.methodOptions.empty())
            throw std::invalid_argument(
                "qnt-ptq161 has no per-layer option '" +
                settings.methodOptions.begin()->getKey().str() + "'");
          return nx::runPtq161Initialization(problem, r, bits, feedback);
        });
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
