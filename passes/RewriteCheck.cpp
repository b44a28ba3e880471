//===- RewriteCheck.cpp - Numerical check of exact rewrites ---------------===//

#include "passes/RewriteCheck.h"

using namespace mlir;

static qnt::RewriteChecker &checkerSlot() {
  static qnt::RewriteChecker checker;
  return checker;
}

void qnt::setRewriteChecker(RewriteChecker checker) {
  checkerSlot() = std::move(checker);
}

const qnt::RewriteChecker &qnt::getRewriteChecker() { return checkerSlot(); }

LogicalResult qnt::RewriteVerifier::start(ModuleOp module, StringRef name,
                                          bool verify, double tol) {
  passName = name.str();
  tolerance = tol;
  if (!(tolerance >= 0))
    return module.emitError(passName)
           << ": tolerance must be >= 0, got " << tolerance;
  if (!verify)
    return success();
  if (!getRewriteChecker())
    return module.emitError(passName)
           << ": verify needs the CPU runtime, which this program does not "
              "link";
  before = module.clone();
  return success();
}

LogicalResult qnt::RewriteVerifier::finish(ModuleOp module) {
  if (!before)
    return success();
  return getRewriteChecker()(*before, module, passName, tolerance);
}
