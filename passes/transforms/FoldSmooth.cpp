//===- FoldSmooth.cpp - Fold qnt.smooth into the producer -------*- C++ -*-===//
//
// Implements qnt-fold-smooth (Passes.td). Where a scale folds is decided by
// passes/SmoothFolding.h, the same rule the methods use when they choose to
// search a scale; this pass only rewrites the data.
//
//===----------------------------------------------------------------------===//

#include "passes/ParamRewriter.h"
#include "passes/Passes.h"
#include "passes/RewriteCheck.h"
#include "passes/SmoothFolding.h"
#include "passes/ptq/WeightMethodPass.h"

namespace mlir::qnt {
#define GEN_PASS_DEF_QNTFOLDSMOOTH
#include "passes/Passes.h.inc"
} // namespace mlir::qnt

using namespace mlir;
using namespace mlir::qnt;

namespace {

struct QntFoldSmoothPass
    : mlir::qnt::impl::QntFoldSmoothBase<QntFoldSmoothPass>,
      ParamWritingPass {
  using QntFoldSmoothBase::QntFoldSmoothBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    RewriteVerifier verifier;
    if (failed(verifier.start(module, "qnt-fold-smooth", verify, tolerance)))
      return signalPassFailure();
    // The smoothed inputs, in order of their first smooth.
    SmallVector<Value> inputs;
    module.walk([&](SmoothOp smooth) {
      if (!llvm::is_contained(inputs, smooth.getInput()))
        inputs.push_back(smooth.getInput());
    });
    ParamRewriter data(module, output, "qnt-fold-smooth");
    for (Value input : inputs) {
      FailureOr<int64_t> folded = foldSmoothedInput(input, data);
      if (failed(folded))
        return signalPassFailure();
      numFolded += *folded;
    }
    if (failed(data.finish()))
      return signalPassFailure();
    if (failed(verifier.finish(module)))
      return signalPassFailure();
  }
};

} // namespace
