//===- GpuMergeKernelModules.cpp - one gpu.module per program -*- C++ -*-===//
//
// Implements qnt-gpu-merge-kernel-modules: the kernels outlined one module
// each are moved into the first gpu.module, so that serialization runs once
// per chip and the runtime loads one image.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/SymbolTable.h"

#include "llvm/ADT/DenseMap.h"

namespace mlir::qnt {
#define GEN_PASS_DEF_QNTGPUMERGEKERNELMODULES
#include "passes/Passes.h.inc"
} // namespace mlir::qnt

using namespace mlir;

namespace {

struct QntGpuMergeKernelModulesPass
    : mlir::qnt::impl::QntGpuMergeKernelModulesBase<
          QntGpuMergeKernelModulesPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<gpu::GPUModuleOp> gpuModules(module.getOps<gpu::GPUModuleOp>());
    if (gpuModules.size() < 2)
      return;
    gpu::GPUModuleOp target = gpuModules.front();
    SymbolTable targetSymbols(target);
    // (old module, old function) -> new function name in `target`.
    llvm::DenseMap<std::pair<StringAttr, StringAttr>, StringAttr> renamed;
    for (gpu::GPUModuleOp source : llvm::drop_begin(gpuModules)) {
      if (source.getTargetsAttr() != target.getTargetsAttr() ||
          source->getAttr("offloadingHandler") !=
              target->getAttr("offloadingHandler")) {
        source.emitError() << "cannot merge gpu.module @"
                           << source.getSymName() << " into @"
                           << target.getSymName()
                           << ": their targets differ";
        return signalPassFailure();
      }
      for (Operation &op :
           llvm::make_early_inc_range(source.getBody()->getOperations())) {
        auto symbol = dyn_cast<SymbolOpInterface>(&op);
        if (!symbol)
          continue;
        StringAttr oldName = symbol.getNameAttr();
        op.remove();
        // insert() renames the op when its name is taken.
        StringAttr newName = targetSymbols.insert(&op);
        renamed[{source.getSymNameAttr(), oldName}] = newName;
      }
    }
    module.walk([&](gpu::LaunchFuncOp launch) {
      auto it = renamed.find({launch.getKernelModuleName(),
                              launch.getKernelName()});
      if (it == renamed.end())
        return;
      launch.setKernelAttr(SymbolRefAttr::get(
          target.getSymNameAttr(),
          {FlatSymbolRefAttr::get(it->second)}));
    });
    for (gpu::GPUModuleOp source : llvm::drop_begin(gpuModules))
      source.erase();
  }
};

} // namespace
