//===- InsertObservers.cpp - qnt.observe on linear layer inputs -*- C++ -*-===//
//
// Implements qnt-insert-observers: the first step of calibration, naming
// each linear layer's input after the layer's weight.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"

namespace mlir::qnt {
#define GEN_PASS_DEF_QNTINSERTOBSERVERS
#include "passes/Passes.h.inc"
} // namespace mlir::qnt

using namespace mlir;
using namespace mlir::qnt;

namespace {

/// The name of the layer whose weight (or first weight component) is
/// `weight`, if it has one: the name location the importer gives a weight
/// and PTQ passes carry over to the quantized weight's ops, else a
/// qnt.param's own name.
static std::optional<std::string> weightName(Value weight) {
  Operation *producer = weight ? weight.getDefiningOp() : nullptr;
  if (!producer)
    return std::nullopt;
  if (auto name = dyn_cast<NameLoc>(producer->getLoc()))
    return name.getName().str();
  if (auto param = dyn_cast<ParamOp>(producer))
    return param.getName().str();
  return std::nullopt;
}

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

    // (the op consuming the activation, operand index, weight).
    SmallVector<std::tuple<Operation *, unsigned, Value>> sites;
    func.walk([&](Operation *op) {
      if (auto matmul = dyn_cast<linalg::MatmulOp>(op)) {
        if (isa<linalg::MatmulTransposeBOp>(op) &&
            matmul.hasPureTensorSemantics())
          sites.emplace_back(op, 0, matmul.getInputs()[1]);
      } else if (auto matmul = dyn_cast<MatmulOp>(op)) {
        Value weight = matmul.getComponents().empty()
                           ? Value()
                           : matmul.getComponents().front();
        sites.emplace_back(op, 0, weight);
      }
    });

    OpBuilder b(func.getContext());
    ArrayAttr statsAttr = b.getStrArrayAttr(
        SmallVector<StringRef>(statNames.begin(), statNames.end()));
    unsigned unnamed = 0;
    for (auto [op, operand, weight] : sites) {
      Value input = op->getOperand(operand);
      if (input.getDefiningOp<ObserveOp>())
        continue;
      std::optional<std::string> name = weightName(weight);
      if (!name)
        name = (func.getSymName() + ".linear" + Twine(unnamed++)).str();
      b.setInsertionPoint(op);
      auto observe = ObserveOp::create(b, op->getLoc(), input.getType(), input,
                                       b.getStringAttr(*name), statsAttr);
      op->setOperand(operand, observe.getResult());
    }
  }
};

} // namespace
