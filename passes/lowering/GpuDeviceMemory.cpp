//===- GpuDeviceMemory.cpp - host functions' buffers on the device -*- C++ -*-===//
//
// Implements qnt-gpu-device-memory: after kernel outlining, a host function
// only allocates, launches and returns. Its buffers become stream-ordered
// device allocations and its launches asynchronous on one stream, so that
// the host queues a whole function (a transformer block) without waiting
// for the device.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Interfaces/ViewLikeInterface.h"

#include "llvm/ADT/SmallPtrSet.h"

namespace mlir::qnt {
#define GEN_PASS_DEF_QNTGPUDEVICEMEMORY
#include "passes/Passes.h.inc"
} // namespace mlir::qnt

using namespace mlir;

namespace {

/// The buffer a memref value views (through subviews, reshapes, casts).
Value rootBuffer(Value value) {
  while (auto view = value.getDefiningOp<ViewLikeOpInterface>())
    value = view.getViewSource();
  return value;
}

/// Host code may read its arguments (the position of a block) and compute
/// shapes; touching a buffer made in the function would touch device
/// memory from the host.
LogicalResult checkHostAccesses(func::FuncOp func) {
  WalkResult result = func.walk([](Operation *op) {
    Value buffer;
    if (auto load = dyn_cast<memref::LoadOp>(op))
      buffer = load.getMemRef();
    else if (auto store = dyn_cast<memref::StoreOp>(op))
      buffer = store.getMemRef();
    else if (isa<memref::CopyOp>(op))
      buffer = op->getOperand(1);
    else
      return WalkResult::advance();
    if (isa<BlockArgument>(rootBuffer(buffer)) && !isa<memref::CopyOp>(op))
      return WalkResult::advance();
    op->emitError() << "'" << op->getName()
                    << "' would run on the host on device memory; the "
                       "whole-model GPU pipeline needs it inside a kernel";
    return WalkResult::interrupt();
  });
  return failure(result.wasInterrupted());
}

LogicalResult moveToDevice(func::FuncOp func) {
  if (func.isExternal())
    return success();
  if (!func.getBody().hasOneBlock())
    return func.emitError() << "the whole-model GPU pipeline needs host "
                               "functions of one block (structured control "
                               "flow)";
  if (failed(checkHostAccesses(func)))
    return failure();
  MLIRContext *ctx = func.getContext();
  Block &body = func.getBody().front();
  auto tokenType = gpu::AsyncTokenType::get(ctx);
  OpBuilder builder = OpBuilder::atBlockBegin(&body);
  Value stream =
      gpu::WaitOp::create(builder, func.getLoc(), tokenType, ValueRange{})
          .getAsyncToken();

  SmallVector<Value> deviceBuffers;
  SmallVector<memref::AllocOp> allocs;
  func.walk([&](memref::AllocOp alloc) { allocs.push_back(alloc); });
  for (memref::AllocOp alloc : allocs) {
    if (alloc->getBlock() != &body)
      return alloc.emitError() << "the whole-model GPU pipeline frees "
                                  "buffers at the end of their function; "
                                  "this one is allocated inside a region";
    builder.setInsertionPoint(alloc);
    auto device = gpu::AllocOp::create(
        builder, alloc.getLoc(), alloc.getType(), tokenType,
        ValueRange{stream}, alloc.getDynamicSizes(), alloc.getSymbolOperands(),
        /*hostShared=*/false);
    alloc.getResult().replaceAllUsesWith(device.getMemref());
    alloc.erase();
    deviceBuffers.push_back(device.getMemref());
  }

  SmallVector<memref::DeallocOp> deallocs;
  func.walk([&](memref::DeallocOp dealloc) { deallocs.push_back(dealloc); });
  llvm::SmallPtrSet<Value, 8> freed;
  for (memref::DeallocOp dealloc : deallocs) {
    freed.insert(rootBuffer(dealloc.getMemref()));
    builder.setInsertionPoint(dealloc);
    gpu::DeallocOp::create(builder, dealloc.getLoc(), tokenType,
                           ValueRange{stream}, dealloc.getMemref());
    dealloc.erase();
  }

  SmallVector<gpu::LaunchFuncOp> launches;
  func.walk([&](gpu::LaunchFuncOp launch) { launches.push_back(launch); });
  for (gpu::LaunchFuncOp launch : launches) {
    if (launch.getAsyncToken())
      continue;
    builder.setInsertionPoint(launch);
    std::optional<gpu::KernelDim3> cluster;
    if (launch.hasClusterSize())
      cluster = launch.getClusterSizeOperandValues();
    SmallVector<Value> dependencies(launch.getAsyncDependencies());
    dependencies.push_back(stream);
    auto async = gpu::LaunchFuncOp::create(
        builder, launch.getLoc(), launch.getKernel(),
        launch.getGridSizeOperandValues(), launch.getBlockSizeOperandValues(),
        launch.getDynamicSharedMemorySize(), launch.getKernelOperands(),
        tokenType, dependencies, cluster);
    async->setDiscardableAttrs(launch->getDiscardableAttrDictionary());
    launch.erase();
  }

  // Buffers that do not leave the function are freed, in stream order,
  // before it returns; the ones returned (or viewed by a result) belong to
  // the caller.
  auto ret = cast<func::ReturnOp>(body.getTerminator());
  llvm::SmallPtrSet<Value, 8> escaping;
  for (Value result : ret.getOperands())
    escaping.insert(rootBuffer(result));
  builder.setInsertionPoint(ret);
  for (Value buffer : deviceBuffers)
    if (!escaping.contains(buffer) && !freed.contains(buffer))
      gpu::DeallocOp::create(builder, ret.getLoc(), tokenType,
                             ValueRange{stream}, buffer);
  return success();
}

struct QntGpuDeviceMemoryPass
    : mlir::qnt::impl::QntGpuDeviceMemoryBase<QntGpuDeviceMemoryPass> {
  using Base::Base;

  void runOnOperation() override {
    for (auto func : getOperation().getOps<func::FuncOp>())
      if (failed(moveToDevice(func)))
        return signalPassFailure();
  }
};

} // namespace
