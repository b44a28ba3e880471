//===- ExposeObservations.cpp - Observed values as results ------*- C++ -*-===//
//
// Implements qnt-expose-observations: the CPU calibration path returns the
// observed activations to the host, which accumulates the statistics.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/IR/SymbolTable.h"

namespace mlir::qnt {
#define GEN_PASS_DEF_QNTEXPOSEOBSERVATIONS
#include "passes/Passes.h.inc"
} // namespace mlir::qnt

using namespace mlir;
using namespace mlir::qnt;

namespace {

/// One extra result: an observed value and who observed it.
struct Exposed {
  Value value;
  SmallVector<Attribute> names;
  llvm::SetVector<Attribute> stats;
};

static LogicalResult exposeObservations(func::FuncOp func, ModuleOp module) {
  SmallVector<ObserveOp> observers;
  func.walk([&](ObserveOp op) { observers.push_back(op); });
  if (observers.empty())
    return success();
  if (!SymbolTable::symbolKnownUseEmpty(func, module))
    return observers.front().emitOpError()
           << "cannot become a result of '" << func.getSymName()
           << "', which has callers";
  // Observed values must dominate the return.
  if (!func.getBody().hasOneBlock())
    return observers.front().emitOpError()
           << "can only be exposed from a single-block function";

  SmallVector<Exposed> exposed;
  llvm::DenseMap<Value, unsigned> indexOf;
  for (ObserveOp op : observers) {
    Value input = op.getInput();
    auto [it, inserted] = indexOf.try_emplace(input, exposed.size());
    if (inserted)
      exposed.push_back({input, {}, {}});
    Exposed &entry = exposed[it->second];
    entry.names.push_back(op.getNameAttr());
    entry.stats.insert(op.getStats().begin(), op.getStats().end());
    op.replaceAllUsesWith(input);
    op.erase();
  }

  Builder b(func.getContext());
  SmallVector<Attribute> descriptions;
  SmallVector<Type> newResults(func.getResultTypes());
  for (Exposed &entry : exposed) {
    newResults.push_back(entry.value.getType());
    descriptions.push_back(b.getDictionaryAttr(
        {b.getNamedAttr("names", b.getArrayAttr(entry.names)),
         b.getNamedAttr("stats", b.getArrayAttr(entry.stats.getArrayRef()))}));
  }
  Operation *ret = func.getBody().front().getTerminator();
  for (Exposed &entry : exposed)
    ret->insertOperands(ret->getNumOperands(), entry.value);
  func.setFunctionType(
      b.getFunctionType(func.getArgumentTypes(), newResults));
  func->setAttr("qnt.observed", b.getArrayAttr(descriptions));
  return success();
}

struct QntExposeObservationsPass
    : mlir::qnt::impl::QntExposeObservationsBase<QntExposeObservationsPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    for (auto func : module.getOps<func::FuncOp>())
      if (!func.isExternal() && failed(exposeObservations(func, module)))
        return signalPassFailure();
  }
};

} // namespace
