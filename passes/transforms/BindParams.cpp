//===- BindParams.cpp - qnt.param to function arguments ---------*- C++ -*-===//
//
// Implements qnt-bind-params: weights become arguments that a runtime binds
// to memory-mapped tensors, instead of constants compiled into the code.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/IR/SymbolTable.h"

namespace mlir::qnt {
#define GEN_PASS_DEF_QNTBINDPARAMS
#include "passes/Passes.h.inc"
} // namespace mlir::qnt

using namespace mlir;
using namespace mlir::qnt;

namespace {

/// Appends one argument per distinct parameter name used in `func` and
/// replaces the qnt.param ops with them.
static LogicalResult bindParams(func::FuncOp func, ModuleOp module) {
  SmallVector<ParamOp> params;
  func.walk([&](ParamOp op) { params.push_back(op); });
  if (params.empty())
    return success();
  if (!SymbolTable::symbolKnownUseEmpty(func, module))
    return params.front().emitOpError()
           << "cannot become an argument of '" << func.getSymName()
           << "', which has callers";

  llvm::StringMap<BlockArgument> bound;
  Block &entry = func.getBody().front();
  for (ParamOp param : params) {
    auto [it, inserted] = bound.try_emplace(param.getName());
    if (inserted) {
      unsigned index = func.getNumArguments();
      if (failed(func.insertArgument(
              index, param.getType(),
              DictionaryAttr::get(
                  func.getContext(),
                  {NamedAttribute(kParamArgAttrName, param.getNameAttr())}),
              param.getLoc())))
        return failure();
      it->second = entry.getArgument(index);
    } else if (it->second.getType() != param.getType()) {
      return param.emitOpError()
             << "parameter '" << param.getName() << "' is used as both "
             << it->second.getType() << " and " << param.getType();
    }
    param.replaceAllUsesWith(it->second);
    param.erase();
  }
  return success();
}

struct QntBindParamsPass : mlir::qnt::impl::QntBindParamsBase<QntBindParamsPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    for (auto func : module.getOps<func::FuncOp>())
      if (!func.isExternal() && failed(bindParams(func, module)))
        return signalPassFailure();
  }
};

} // namespace
