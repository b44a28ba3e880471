//===- Smooth.cpp - SmoothQuant scales, then RTN ----------------*- C++ -*-===//
//
// Implements qnt-smooth: the weight-method driver in group mode with
// numerics::smoothQuantScales and numerics::quantizeScaled.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"
#include "passes/ptq/ScaledGroup.h"
#include "passes/ptq/WeightMethodPass.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"

namespace mlir::qnt {
#define GEN_PASS_DEF_QNTSMOOTH
#include "passes/Passes.h.inc"
} // namespace mlir::qnt

using namespace mlir;
using namespace mlir::qnt;
namespace nx = ::qnt::numerics;

namespace {

struct QntSmoothPass : mlir::qnt::impl::QntSmoothBase<QntSmoothPass>,
                       WeightMethodPass {
  using QntSmoothBase::QntSmoothBase;

  FailureOr<std::unique_ptr<WeightMethodDriver>>
  createDriver(ModuleOp module) const override {
    if (!(alpha >= 0.0 && alpha <= 1.0))
      return module.emitError("qnt-smooth: alpha must be in [0, 1], got ")
             << double(alpha);
    double migration = alpha;
    WeightMethodConfig config = QNT_WEIGHT_METHOD_CONFIG("qnt-smooth");
    config.needsStatistics = true;
    return WeightMethodDriver::create(
        module, std::move(config), "smoothquant",
        [migration](ArrayRef<LayerSettings> settings,
                    ArrayRef<nx::WeightProblem> problems,
                    const GroupContext &context) {
          nx::AwqGroup group =
              scaledGroup("qnt-smooth", settings, problems,
                          [](const nx::WeightProblem &) { return false; });
          const nx::LayerStatistics *stats = problems.front().stats;
          std::vector<float> scales;
          if (context.inputScaleFoldable && stats && stats->count > 0)
            scales = nx::tieScales(
                nx::smoothQuantScales(stats->absmax, group.layers, migration),
                context.channelClass);
          return nx::quantizeScaled(group, scales, nx::AwqOptions());
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
