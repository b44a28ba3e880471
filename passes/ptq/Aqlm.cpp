//===- Aqlm.cpp - AQLM additive-codebook quantization -----------*- C++ -*-===//
//
// Implements qnt-aqlm: the weight-method driver with numerics::runAqlm. The
// codebook configuration and AQLM's options may be overridden per layer
// (overrides=".*w2.*:in-group-size=4").
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"
#include "passes/ptq/WeightMethodPass.h"
#include "qnt/numerics/Aqlm.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"

namespace mlir::qnt {
#define GEN_PASS_DEF_QNTAQLM
#include "passes/Passes.h.inc"
} // namespace mlir::qnt

using namespace mlir;
using namespace mlir::qnt;
namespace nx = ::qnt::numerics;

namespace {

/// The codebook configuration and AQLM options of one layer.
struct AqlmSettings {
  nx::CodebookSpec spec;
  nx::AqlmOptions options;
};

/// `defaults` with the per-layer options of `settings` applied.
AqlmSettings layerSettings(AqlmSettings s, const LayerSettings &settings) {
  for (const auto &entry : settings.methodOptions) {
    StringRef key = entry.getKey(), value = entry.getValue();
    auto integer = [&](auto &out) {
      int64_t parsed;
      // Every option is small and positive; the numerics check the rest.
      if (value.getAsInteger(10, parsed) || parsed < 1 || parsed > (1 << 20))
        throw std::invalid_argument("bad value '" + value.str() +
                                    "' for AQLM option " + key.str());
      out = decltype(out + 0)(parsed);
    };
    if (key == "codebooks")
      integer(s.spec.numCodebooks);
    else if (key == "code-bits")
      integer(s.spec.codeBits);
    else if (key == "in-group-size")
      integer(s.spec.groupSize);
    else if (key == "beam-size")
      integer(s.options.beamSize);
    else
      throw std::invalid_argument("unknown AQLM option '" + key.str() +
                                  "' (codebooks, code-bits, in-group-size, "
                                  "beam-size)");
  }
  return s;
}

struct QntAqlmPass : mlir::qnt::impl::QntAqlmBase<QntAqlmPass>,
                     WeightMethodPass {
  using QntAqlmBase::QntAqlmBase;

  FailureOr<std::unique_ptr<WeightMethodDriver>>
  createDriver(ModuleOp module) const override {
    AqlmSettings defaults;
    defaults.spec.numCodebooks = numCodebooks;
    defaults.spec.codeBits = codeBits;
    defaults.spec.groupSize = inGroupSize;
    defaults.options.beamSize = beamSize;
    defaults.options.kmeansIterations = kmeansIterations;
    defaults.options.maxEpochs = maxEpochs;
    defaults.options.codebookUpdate.steps = adamSteps;
    defaults.options.codebookUpdate.learningRate = learningRate;
    defaults.options.relativeTolerance = relativeTolerance;
    defaults.options.seed = seed;
    if (beamSize < 1 || kmeansIterations < 0 || maxEpochs < 0 ||
        adamSteps < 0 || !(learningRate > 0) || !(relativeTolerance >= 0))
      return module.emitError(
          "qnt-aqlm: beam-size must be >= 1, kmeans-iterations, max-epochs "
          "and adam-steps >= 0, lr > 0 and relative-tolerance >= 0");
    WeightMethodConfig config = QNT_WEIGHT_METHOD_CONFIG("qnt-aqlm");
    config.needsStatistics = true;
    return WeightMethodDriver::create(
        module, std::move(config), "aqlm",
        [defaults](const LayerSettings &settings,
                   const nx::WeightProblem &problem) {
          AqlmSettings s = layerSettings(defaults, settings);
          return nx::runAqlm(s.spec, problem, s.options);
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
