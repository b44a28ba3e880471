//===- ApproximateMath.cpp - f32 math ops to polynomials ---------*- C++ -*-===//
//
// Implements qnt-approximate-math: a thin shell over MLIR's polynomial
// approximation patterns, restricted to the ops the user names so that
// nothing else changes its numerics.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#include "llvm/ADT/StringSet.h"

namespace mlir::qnt {
#define GEN_PASS_DEF_QNTAPPROXIMATEMATH
#include "passes/Passes.h.inc"
} // namespace mlir::qnt

using namespace mlir;

namespace {

/// The math ops for which MLIR has an f32 polynomial approximation.
constexpr llvm::StringLiteral kApproximable[] = {
    "acos", "asin", "atan", "atan2", "cbrt", "cos",  "erf",   "erfc",
    "exp",  "expm1", "log", "log1p", "log2", "sin", "tanh"};

struct QntApproximateMathPass
    : mlir::qnt::impl::QntApproximateMathBase<QntApproximateMathPass> {
  using Base::Base;

  void runOnOperation() override {
    llvm::StringSet<> chosen;
    for (const std::string &name : ops) {
      if (!llvm::is_contained(kApproximable, name)) {
        getOperation()->emitError()
            << "qnt-approximate-math: no polynomial approximation of math."
            << name << "; known: "
            << llvm::join(llvm::ArrayRef(kApproximable), ", ");
        return signalPassFailure();
      }
      chosen.insert(name);
    }
    if (chosen.empty())
      chosen.insert("exp");
    RewritePatternSet patterns(&getContext());
    populateMathPolynomialApproximationPatterns(
        patterns, [&](StringRef name) {
          // The patterns ask with the full op name ("math.exp").
          name.consume_front("math.");
          return chosen.contains(name);
        });
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
