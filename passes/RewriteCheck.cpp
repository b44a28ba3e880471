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
