//===- RewriteCheck.h - Numerical check of exact rewrites -------*- C++ -*-===//
//
// Folding passes (qnt-fold-smooth, equalization) claim that their rewrite
// changes no output beyond float rounding. With `verify`, they prove it on
// the spot: the module before and after the rewrite is compiled and run on
// the same inputs, and the pass fails if any output differs by more than a
// relative tolerance. Running needs the CPU runtime, which sits above the
// pass library; the tools install the checker (qnt::registerAllPasses), so
// a pass only sees this hook.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_PASSES_REWRITECHECK_H
#define QNT_PASSES_REWRITECHECK_H

#include "mlir/IR/BuiltinOps.h"

#include <functional>
#include <string>

namespace mlir::qnt {

/// Runs `before` and `after` on the same inputs and reports on `after` (as
/// `passName`) where an output's relative difference
/// ||after - before|| / ||before|| exceeds `tolerance`. Activation
/// fake-quantization is left out of both runs: the rewrite is exact on the
/// float computation, and a rounding step would turn a float-rounding
/// difference of its input into a whole grid step.
using RewriteChecker = std::function<LogicalResult(
    ModuleOp before, ModuleOp after, StringRef passName, double tolerance)>;

void setRewriteChecker(RewriteChecker checker);
/// The installed checker; empty in a program that installed none.
const RewriteChecker &getRewriteChecker();

/// What an exact-rewrite pass does with its `verify` and `tolerance`
/// options: `start` checks them and, when verifying, keeps a copy of the
/// module; `finish` runs the checker on the copy and the rewritten module.
class RewriteVerifier {
public:
  LogicalResult start(ModuleOp module, StringRef passName, bool verify,
                      double tolerance);
  LogicalResult finish(ModuleOp module);

private:
  OwningOpRef<ModuleOp> before;
  std::string passName;
  double tolerance = 0;
};

} // namespace mlir::qnt

#endif // QNT_PASSES_REWRITECHECK_H
