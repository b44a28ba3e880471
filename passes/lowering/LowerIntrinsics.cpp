//===- LowerIntrinsics.cpp - qnt.intrinsic to llvm.call_intrinsic -*- C++ -*-===//
//
// Implements qnt-lower-intrinsics.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/IR/PatternMatch.h"

namespace mlir::qnt {
#define GEN_PASS_DEF_QNTLOWERINTRINSICS
#include "passes/Passes.h.inc"
} // namespace mlir::qnt

using namespace mlir;
using namespace mlir::qnt;

namespace {

struct QntLowerIntrinsicsPass
    : mlir::qnt::impl::QntLowerIntrinsicsBase<QntLowerIntrinsicsPass> {
  void runOnOperation() override {
    IRRewriter rewriter(&getContext());
    getOperation()->walk([&](IntrinsicOp op) {
      rewriter.setInsertionPoint(op);
      auto call = LLVM::CallIntrinsicOp::create(
          rewriter, op.getLoc(), op.getResult().getType(), op.getNameAttr(),
          op.getArgs());
      rewriter.replaceOp(op, call.getResults());
    });
  }
};

} // namespace
