//===- InsertObservers.cpp - qnt.observe on linear layer inputs -*- C++ -*-===//
//
// Implements qnt-insert-observers: the first step of calibration, naming
// each linear layer's input after the layer's weight.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"
#include "passes/LinearLayers.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"

namespace mlir::qnt {
#define GEN_PASS_DEF_QNTINSERTOBSERVERS
#include "passes/Passes.h.inc"
} // namespace mlir::qnt

using namespace mlir;
using namespace mlir::qnt;

namespace {

struct QntInsertObserversPass
    : mlir::qnt::impl::QntInsertObserversBase<QntInsertObserversPass> {
  using QntInsertObserversBase::QntInsertObserversBase;

  void runOnOperation() override {
    func::FuncOp func = getOperation();
    SmallVector<std::string> statNames(stats.begin(), stats.end());
    if (statNames.empty())
      statNames = {"absmax", "mean_abs", "hessian"};
    for (const std::string &stat : statNames)
      if (stat != "absmax" && stat != "mean_abs" && stat != "hessian") {
        func.emitError("qnt-insert-observers: unknown statistic '")
            << stat << "'; expected absmax, mean_abs or hessian";
        return signalPassFailure();
      }

    OpBuilder b(func.getContext());
    ArrayAttr statsAttr = b.getStrArrayAttr(
        SmallVector<StringRef>(statNames.begin(), statNames.end()));
    for (const LinearLayer &layer : collectLinearLayers(func)) {
      if (!layer.observable)
        continue;
      Operation *op = layer.op;
      Value input = op->getOperand(0);
      if (input.getDefiningOp<ObserveOp>())
        continue;
      b.setInsertionPoint(op);
      auto observe = ObserveOp::create(b, op->getLoc(), input.getType(), input,
                                       b.getStringAttr(layer.name), statsAttr);
      op->setOperand(0, observe.getResult());
    }
  }
};

} // namespace
