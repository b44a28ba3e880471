//===- RewriteCheck.h - Run a module before and after a rewrite -*- C++ -*-===//
//
// The checker behind the `verify` option of the folding passes
// (passes/RewriteCheck.h): both modules are compiled by the CPU JIT and run
// on the same inputs.
//  - An imported model: every block on the same input (the embedding of a
//    token sequence, then the outputs of the blocks before, as the module
//    before the rewrite computes them), and the head.
//  - Any other module: every public function whose arguments are tensors,
//    on seeded random inputs (dynamic dimensions 8); functions with
//    dynamically shaped results are skipped.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_PTQ_REWRITECHECK_H
#define QNT_PTQ_REWRITECHECK_H

#include "mlir/IR/BuiltinOps.h"

#include <cstdint>
#include <vector>

namespace qnt::ptq {

/// The token sequences an imported model is checked on. quant-compile sets
/// the first calibration windows; by default, two fixed pseudo-random
/// sequences of 64 tokens.
void setRewriteCheckSequences(std::vector<std::vector<int32_t>> sequences);

/// Compiles clones of `before` and `after`, runs them and reports on
/// `after` where an output's relative difference exceeds `tolerance`.
mlir::LogicalResult checkExactRewrite(mlir::ModuleOp before,
                                      mlir::ModuleOp after,
                                      llvm::StringRef passName,
                                      double tolerance);

/// Installs checkExactRewrite as the passes' rewrite checker.
void installRewriteChecker();

} // namespace qnt::ptq

#endif // QNT_PTQ_REWRITECHECK_H
