//===- GpuMapLoops.cpp - scf.parallel nests to GPU blocks and threads -*- C++ -*-===//
//
// Implements qnt-gpu-map-loops. MLIR's greedy mapper (gpu-map-parallel-loops)
// maps loop dimension i to blocks/threads i of a perfectly nested pair of
// loops and leaves dimensions past the third sequential; the loops that
// linalg makes are single nests of up to five dimensions with nothing to
// put on threads. Here every outermost nest becomes (collapsed leading
// dimensions) x (innermost dimension), the innermost is tiled by a block of
// threads, and the mapping is chosen so that neighbouring threads touch
// neighbouring elements.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/Transforms/ParallelLoopMapper.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/SCF/Transforms/Transforms.h"
#include "mlir/Dialect/SCF/Utils/Utils.h"
#include "mlir/IR/PatternMatch.h"

namespace mlir::qnt {
#define GEN_PASS_DEF_QNTGPUMAPLOOPS
#include "passes/Passes.h.inc"
} // namespace mlir::qnt

using namespace mlir;

namespace {

LogicalResult mapDims(scf::ParallelOp loop,
                      ArrayRef<gpu::Processor> processors) {
  MLIRContext *ctx = loop.getContext();
  AffineMap identity = AffineMap::getMultiDimIdentityMap(1, ctx);
  SmallVector<gpu::ParallelLoopDimMappingAttr> mapping;
  for (gpu::Processor processor : processors)
    mapping.push_back(
        gpu::ParallelLoopDimMappingAttr::get(ctx, processor, identity,
                                             identity));
  return gpu::setMappingAttr(loop, mapping);
}

/// Every scf.parallel nested in `root` runs sequentially in its thread.
LogicalResult mapNestedSequential(scf::ParallelOp root) {
  WalkResult result = root.getBody()->walk([](scf::ParallelOp nested) {
    SmallVector<gpu::Processor> processors(nested.getNumLoops(),
                                           gpu::Processor::Sequential);
    return failed(mapDims(nested, processors)) ? WalkResult::interrupt()
                                               : WalkResult::advance();
  });
  return failure(result.wasInterrupted());
}

/// Collapses the leading dimensions of a nest into one and normalizes every
/// dimension to 0..count step 1 (the tiling's guard assumes unit steps);
/// returns the loop that replaces `loop`.
scf::ParallelOp collapseLeadingDims(RewriterBase &rewriter,
                                    scf::ParallelOp loop) {
  unsigned rank = loop.getNumLoops();
  std::vector<std::vector<unsigned>> groups;
  if (rank > 1) {
    std::vector<unsigned> leading;
    for (unsigned i = 0; i + 1 < rank; ++i)
      leading.push_back(i);
    groups.push_back(leading);
  }
  groups.push_back({rank - 1});
  // The collapsed loop is created where `loop` was, right before its
  // successor (a block always ends with a terminator, so there is one).
  Operation *successor = loop->getNextNode();
  collapseParallelLoops(rewriter, loop, groups);
  return cast<scf::ParallelOp>(successor->getPrevNode());
}

/// Threads per block for an innermost extent: `blockSize`, or the extent
/// rounded up to whole warps when it is a smaller constant.
int64_t threadsFor(scf::ParallelOp loop, int64_t blockSize) {
  unsigned last = loop.getNumLoops() - 1;
  std::optional<int64_t> lower =
      getConstantIntValue(loop.getLowerBound()[last]);
  std::optional<int64_t> upper =
      getConstantIntValue(loop.getUpperBound()[last]);
  std::optional<int64_t> step = getConstantIntValue(loop.getStep()[last]);
  if (!lower || !upper || !step || *step <= 0)
    return blockSize;
  int64_t extent = llvm::divideCeil(std::max<int64_t>(*upper - *lower, 0),
                                    *step);
  return std::min(blockSize, std::max<int64_t>(32, llvm::alignTo(extent, 32)));
}

LogicalResult mapRoot(RewriterBase &rewriter, scf::ParallelOp root,
                      int64_t blockSize) {
  // Blocks and threads share nothing here: a reduction across them would
  // need a combining step this mapping does not make.
  if (root.getNumReductions() != 0)
    return root.emitError() << "qnt-gpu-map-loops: a parallel loop with "
                               "reductions cannot be mapped; reduce in "
                               "sequential loops inside it";
  if (failed(mapNestedSequential(root)))
    return root.emitError() << "cannot map the nested parallel loops";
  // Read before collapsing, which computes the bounds with arith ops.
  int64_t threads = threadsFor(root, blockSize);
  scf::ParallelOp loop = collapseLeadingDims(rewriter, root);
  SmallVector<int64_t> tileSizes(loop.getNumLoops(), 1);
  tileSizes.back() = threads;
  // Constant inner bounds (an scf.if guards the ragged last tile): a
  // launch's block size must be known before the launch.
  auto [outer, inner] =
      scf::tileParallelLoop(loop, tileSizes, /*noMinMaxBounds=*/true);
  using P = gpu::Processor;
  if (outer.getNumLoops() == 1)
    return success(succeeded(mapDims(outer, {P::BlockX})) &&
                   succeeded(mapDims(inner, {P::ThreadX})));
  // The collapsed dimension can exceed the 65535 blocks allowed in y and
  // z; the number of tiles of the innermost one is small.
  return success(succeeded(mapDims(outer, {P::BlockX, P::BlockY})) &&
                 succeeded(mapDims(inner, {P::Sequential, P::ThreadX})));
}

struct QntGpuMapLoopsPass
    : mlir::qnt::impl::QntGpuMapLoopsBase<QntGpuMapLoopsPass> {
  using Base::Base;

  void runOnOperation() override {
    if (blockSize < 32 || blockSize > 1024 || blockSize % 32 != 0) {
      getOperation().emitError()
          << "qnt-gpu-map-loops: block-size must be a multiple of 32 in "
             "32..1024, got "
          << static_cast<int64_t>(blockSize);
      return signalPassFailure();
    }
    SmallVector<scf::ParallelOp> roots;
    getOperation().walk<WalkOrder::PreOrder>([&](Operation *op) {
      if (isa<gpu::LaunchOp>(op))
        return WalkResult::skip();
      if (auto loop = dyn_cast<scf::ParallelOp>(op)) {
        roots.push_back(loop);
        return WalkResult::skip();
      }
      return WalkResult::advance();
    });
    IRRewriter rewriter(&getContext());
    for (scf::ParallelOp root : roots) {
      if (failed(mapRoot(rewriter, root, blockSize)))
        return signalPassFailure();
      ++numMapped;
    }
  }
};

} // namespace
