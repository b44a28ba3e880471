//===- Awq.cpp - Activation-aware weight quantization -----------*- C++ -*-===//
//
// Implements qnt-awq: the weight-method driver in group mode with
// numerics::runAWQ. The module loss comes from the driver's evaluator (the
// sequential block driver runs the transformer block); the scale is
// searched only where passes/SmoothFolding.h says it folds.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"
#include "passes/ptq/ScaledGroup.h"
#include "passes/ptq/WeightMethodPass.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "llvm/Support/Regex.h"

namespace mlir::qnt {
#define GEN_PASS_DEF_QNTAWQ
#include "passes/Passes.h.inc"
} // namespace mlir::qnt

using namespace mlir;
using namespace mlir::qnt;
namespace nx = ::qnt::numerics;

namespace {

struct QntAwqPass : mlir::qnt::impl::QntAwqBase<QntAwqPass>,
                    WeightMethodPass {
  using QntAwqBase::QntAwqBase;

  FailureOr<std::unique_ptr<WeightMethodDriver>>
  createDriver(ModuleOp module) const override {
    if (scaleGrid < 1 || scaleGrid > 1000)
      return module.emitError("qnt-awq: scale-grid must be in [1, 1000], got ")
             << int64_t(scaleGrid);
    if (lossSequences < 0)
      return module.emitError("qnt-awq: loss-sequences must be >= 0, got ")
             << int64_t(lossSequences);
    auto noClipPattern = std::make_shared<llvm::Regex>(noClip);
    std::string regexError;
    if (!noClipPattern->isValid(regexError))
      return module.emitError("qnt-awq: invalid no-clip pattern '")
             << noClip << "': " << regexError;
    nx::AwqOptions options;
    options.scaleGrid = scaleGrid;
    bool clipWeights = clip;
    bool keepUnfoldable = unfoldableScales == UnfoldableScales::Keep;
    WeightMethodConfig config = QNT_WEIGHT_METHOD_CONFIG("qnt-awq");
    config.needsStatistics = true;
    config.moduleLossSequences = lossSequences;
    return WeightMethodDriver::create(
        module, std::move(config), "awq",
        [=](ArrayRef<LayerSettings> settings,
            ArrayRef<nx::WeightProblem> problems,
            const GroupContext &context) {
          nx::AwqGroup group = scaledGroup(
              "qnt-awq", settings, problems,
              [&](const nx::WeightProblem &problem) {
                return clipWeights && !noClipPattern->match(problem.name);
              });
          group.moduleLoss = context.moduleLoss;
          group.channelClass = context.channelClass;
          nx::AwqOptions groupOptions = options;
          groupOptions.searchScales =
              context.inputScaleFoldable || keepUnfoldable;
          return nx::runAWQ(group, groupOptions);
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
