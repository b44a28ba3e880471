//===- GpuPrepareLoops.cpp - linalg on buffers, shaped for GPU mapping -*- C++ -*-===//
//
// Implements qnt-gpu-prepare-loops: reduction iterators innermost, so that
// every linalg op becomes one outer scf.parallel (one kernel, one thread per
// output element) with its reductions sequential inside; and memref.copy as
// a linalg copy, so that no copy of device memory is left to the host.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Dialect/Linalg/Utils/Utils.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"

namespace mlir::qnt {
#define GEN_PASS_DEF_QNTGPUPREPARELOOPS
#include "passes/Passes.h.inc"
} // namespace mlir::qnt

using namespace mlir;

namespace {

/// The loop order with the parallel iterators first and the reductions
/// last, each in their original order (interchangeGenericOp's convention:
/// entry i is the old loop that becomes loop i).
SmallVector<unsigned> reductionsLastOrder(linalg::LinalgOp op) {
  SmallVector<unsigned> order;
  SmallVector<utils::IteratorType> iterators = op.getIteratorTypesArray();
  for (auto [index, iterator] : llvm::enumerate(iterators))
    if (iterator == utils::IteratorType::parallel)
      order.push_back(index);
  for (auto [index, iterator] : llvm::enumerate(iterators))
    if (iterator != utils::IteratorType::parallel)
      order.push_back(index);
  return order;
}

bool isIdentityOrder(ArrayRef<unsigned> order) {
  for (auto [index, loop] : llvm::enumerate(order))
    if (index != loop)
      return false;
  return true;
}

LogicalResult moveReductionsInnermost(RewriterBase &rewriter,
                                      linalg::LinalgOp op) {
  SmallVector<unsigned> order = reductionsLastOrder(op);
  if (isIdentityOrder(order))
    return success();
  rewriter.setInsertionPoint(op);
  auto generic = dyn_cast<linalg::GenericOp>(op.getOperation());
  if (!generic) {
    FailureOr<linalg::GenericOp> generalized =
        linalg::generalizeNamedOp(rewriter, op);
    if (failed(generalized))
      return op.emitError() << "cannot generalize '" << op->getName()
                            << "' to reorder its reductions for the GPU";
    generic = *generalized;
  }
  if (failed(linalg::interchangeGenericOp(rewriter, generic, order)))
    return generic.emitError()
           << "cannot move the reductions of this op innermost for the GPU";
  return success();
}

struct QntGpuPrepareLoopsPass
    : mlir::qnt::impl::QntGpuPrepareLoopsBase<QntGpuPrepareLoopsPass> {
  using Base::Base;

  void runOnOperation() override {
    IRRewriter rewriter(&getContext());
    SmallVector<linalg::LinalgOp> ops;
    getOperation().walk([&](linalg::LinalgOp op) {
      if (op.hasPureBufferSemantics())
        ops.push_back(op);
    });
    for (linalg::LinalgOp op : ops)
      if (failed(moveReductionsInnermost(rewriter, op)))
        return signalPassFailure();

    SmallVector<memref::CopyOp> copies;
    getOperation().walk([&](memref::CopyOp copy) { copies.push_back(copy); });
    for (memref::CopyOp copy : copies) {
      rewriter.setInsertionPoint(copy);
      linalg::makeMemRefCopyOp(rewriter, copy.getLoc(), copy.getSource(),
                               copy.getTarget());
      rewriter.eraseOp(copy);
    }
  }
};

} // namespace
