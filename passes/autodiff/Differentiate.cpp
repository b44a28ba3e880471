//===- Differentiate.cpp - The qnt-differentiate pass -----------*- C++ -*-===//
//
// A thin shell over buildAdjoint (Adjoint.h): finds the function, chooses
// the arguments and names the adjoint.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"
#include "passes/autodiff/Adjoint.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

namespace mlir::qnt {
#define GEN_PASS_DEF_QNTDIFFERENTIATE
#include "passes/Passes.h.inc"
} // namespace mlir::qnt

using namespace mlir;
using namespace mlir::qnt;

namespace {

struct DifferentiatePass
    : public mlir::qnt::impl::QntDifferentiateBase<DifferentiatePass> {
  using QntDifferentiateBase::QntDifferentiateBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (function.empty()) {
      module.emitError("qnt-differentiate: the option 'function' is required");
      return signalPassFailure();
    }
    auto func = module.lookupSymbol<func::FuncOp>(function);
    if (!func) {
      module.emitError() << "qnt-differentiate: no function '" << function
                         << "' in the module";
      return signalPassFailure();
    }
    SmallVector<unsigned> arguments(wrt.begin(), wrt.end());
    if (arguments.empty())
      for (unsigned i = 0; i < func.getNumArguments(); ++i)
        if (isDifferentiableType(func.getArgument(i).getType()))
          arguments.push_back(i);
    std::string name =
        adjointName.empty() ? function + "_adjoint" : std::string(adjointName);
    if (failed(buildAdjoint(func, arguments, name)))
      signalPassFailure();
  }
};

} // namespace
