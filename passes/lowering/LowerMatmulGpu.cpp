//===- LowerMatmulGpu.cpp - qnt.matmul to GPU kernel launches ---*- C++ -*-===//
//
// Implements qnt-lower-matmul-gpu: every qnt.matmul becomes launches of the
// fused dequantize kernels of GpuMatmulKernels.h, chosen by M. The host side
// stays on tensors (operands through bufferization.to_buffer, the result a
// fresh buffer wrapped back with to_tensor), so the rest of the function
// bufferizes as usual.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"
#include "passes/lowering/GpuMatmulKernels.h"

#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

namespace mlir::qnt {
#define GEN_PASS_DEF_QNTLOWERMATMULGPU
#include "passes/Passes.h.inc"
} // namespace mlir::qnt

using namespace mlir;
using namespace mlir::qnt;

static constexpr llvm::StringLiteral kKernelModuleName = "qnt_kernels";

static std::string kernelName(unsigned matmulIndex,
                              const GpuMatmulKernelSpec &spec) {
  std::string name = "matmul" + std::to_string(matmulIndex);
  if (spec.kind == GpuMatmulKind::Gemm)
    return name + (spec.usesTensorCores() ? "_gemm_mma" : "_gemm_fma");
  return name + "_gemv_r" + std::to_string(spec.gemvRows);
}

/// Emits the launch of `kernel` for `m` rows (an index value).
static void emitLaunch(OpBuilder &b, Location loc, gpu::GPUFuncOp kernel,
                       const GpuMatmulKernelSpec &spec, Value m,
                       ValueRange operands) {
  auto constant = [&](int64_t v) -> Value {
    return arith::ConstantIndexOp::create(b, loc, v);
  };
  std::array<int64_t, 3> block = spec.blockSize();
  std::array<int64_t, 3> grid = spec.gridSize(1);
  int64_t rowsPerBlock = spec.kind == GpuMatmulKind::Gemv
                             ? spec.gemvRows
                             : spec.options.gemmTileM;
  Value gridY = arith::CeilDivUIOp::create(b, loc, m, constant(rowsPerBlock));
  gpu::LaunchFuncOp::create(
      b, loc, kernel,
      gpu::KernelDim3{constant(grid[0]), gridY, constant(grid[2])},
      gpu::KernelDim3{constant(block[0]), constant(block[1]),
                      constant(block[2])},
      /*dynamicSharedMemorySize=*/Value(), operands);
}

/// Emits `if m <= R1 {launch} else if m <= R2 {...} else {last}` over the
/// kernels of `specs` (GEMV variants by increasing R, then the GEMM).
static void emitDispatch(OpBuilder &b, Location loc,
                         ArrayRef<gpu::GPUFuncOp> kernels,
                         ArrayRef<GpuMatmulKernelSpec> specs, Value m,
                         ValueRange operands) {
  if (specs.size() == 1) {
    emitLaunch(b, loc, kernels.front(), specs.front(), m, operands);
    return;
  }
  Value limit = arith::ConstantIndexOp::create(b, loc, specs.front().gemvRows);
  Value fits =
      arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ule, m, limit);
  scf::IfOp::create(
      b, loc, fits,
      [&](OpBuilder &nb, Location nloc) {
        emitLaunch(nb, nloc, kernels.front(), specs.front(), m, operands);
        scf::YieldOp::create(nb, nloc);
      },
      [&](OpBuilder &nb, Location nloc) {
        emitDispatch(nb, nloc, kernels.drop_front(), specs.drop_front(), m,
                     operands);
        scf::YieldOp::create(nb, nloc);
      });
}

namespace {

struct QntLowerMatmulGpuPass
    : mlir::qnt::impl::QntLowerMatmulGpuBase<QntLowerMatmulGpuPass> {
  using Base::Base;

  void runOnOperation() override {
    FailureOr<GpuMatmulOptions> options = parseOptions();
    if (failed(options))
      return signalPassFailure();

    ModuleOp module = getOperation();
    SmallVector<MatmulOp> matmuls;
    module.walk([&](MatmulOp op) { matmuls.push_back(op); });
    if (matmuls.empty())
      return;

    OpBuilder builder(module.getContext());
    gpu::GPUModuleOp kernelModule = getOrCreateKernelModule(builder);
    for (auto [index, op] : llvm::enumerate(matmuls))
      lowerMatmul(builder, kernelModule, op, index, *options);
  }

private:
  FailureOr<GpuMatmulOptions> parseOptions() {
    GpuMatmulOptions options;
    if (strategy == "auto")
      options.strategy = GpuMatmulStrategy::Auto;
    else if (strategy == "gemv")
      options.strategy = GpuMatmulStrategy::Gemv;
    else if (strategy == "gemm")
      options.strategy = GpuMatmulStrategy::Gemm;
    else
      return emitError(getOperation().getLoc())
             << "qnt-lower-matmul-gpu: unknown strategy '" << strategy
             << "' (expected auto, gemv or gemm)";
    options.gemvMaxRows = gemvMaxRows;
    options.gemvWarpsPerBlock = gemvWarps;
    options.gemvElementsPerLane = gemvElementsPerLane;
    options.gemmTileM = gemmTileM;
    options.gemmTileN = gemmTileN;
    options.gemmTileK = gemmTileK;
    std::string message = options.verify();
    if (!message.empty())
      return emitError(getOperation().getLoc())
             << "qnt-lower-matmul-gpu: " << message;
    return options;
  }

  gpu::GPUModuleOp getOrCreateKernelModule(OpBuilder &builder) {
    ModuleOp module = getOperation();
    module->setAttr(gpu::GPUDialect::getContainerModuleAttrName(),
                    builder.getUnitAttr());
    if (auto existing = module.lookupSymbol<gpu::GPUModuleOp>(
            kKernelModuleName))
      return existing;
    builder.setInsertionPointToEnd(module.getBody());
    return gpu::GPUModuleOp::create(builder, module.getLoc(),
                                    kKernelModuleName);
  }

  void lowerMatmul(OpBuilder &builder, gpu::GPUModuleOp kernelModule,
                   MatmulOp op, unsigned index,
                   const GpuMatmulOptions &options) {
    Location loc = op.getLoc();
    auto inputType = cast<RankedTensorType>(op.getInput().getType());
    RankedTensorType resultType = op.getType();
    int64_t n = resultType.getDimSize(1), k = inputType.getDimSize(1);
    SmallVector<GpuMatmulKernelSpec> specs = selectGpuMatmulKernels(
        op.getEncoding(), inputType.getDimSize(0), n, k,
        inputType.getElementType(), resultType.getElementType(), options);

    SmallVector<gpu::GPUFuncOp> kernels;
    for (const GpuMatmulKernelSpec &spec : specs)
      kernels.push_back(buildGpuMatmulKernel(builder, kernelModule,
                                             kernelName(index, spec), spec));
    numKernels += kernels.size();

    builder.setInsertionPoint(op);
    SmallVector<Type> argTypes = gpuMatmulArgumentTypes(specs.front());
    SmallVector<Value> operands;
    SmallVector<Value> tensors = {op.getInput()};
    llvm::append_range(tensors, op.getComponents());
    // Kernels take x and out with a dynamic M; cast static buffers to it.
    auto asArgument = [&](Value buffer, Type type) -> Value {
      if (buffer.getType() == type)
        return buffer;
      return memref::CastOp::create(builder, loc, type, buffer);
    };
    for (auto [tensor, type] : llvm::zip(tensors, argTypes)) {
      auto tensorType = cast<RankedTensorType>(tensor.getType());
      auto bufferType = MemRefType::get(tensorType.getShape(),
                                        tensorType.getElementType());
      Value buffer = bufferization::ToBufferOp::create(
          builder, loc, bufferType, tensor, builder.getUnitAttr());
      operands.push_back(asArgument(buffer, type));
    }
    Value m = memref::DimOp::create(builder, loc, operands.front(), 0);
    auto resultBufferType = MemRefType::get(resultType.getShape(),
                                            resultType.getElementType());
    SmallVector<Value> dynamicSizes;
    if (resultType.isDynamicDim(0))
      dynamicSizes.push_back(m);
    Value result =
        memref::AllocOp::create(builder, loc, resultBufferType, dynamicSizes);
    operands.push_back(asArgument(result, argTypes.back()));

    // A launch with zero blocks is an error: skip empty inputs.
    Value zero = arith::ConstantIndexOp::create(builder, loc, 0);
    Value nonEmpty = arith::CmpIOp::create(
        builder, loc, arith::CmpIPredicate::ugt, m, zero);
    scf::IfOp::create(builder, loc, nonEmpty,
                      [&](OpBuilder &nb, Location nloc) {
                        emitDispatch(nb, nloc, kernels, specs, m, operands);
                        scf::YieldOp::create(nb, nloc);
                      });
    Value tensor = bufferization::ToTensorOp::create(
        builder, loc, resultType, result, builder.getUnitAttr(),
        builder.getUnitAttr());
    op.replaceAllUsesWith(tensor);
    op.erase();
    ++numLowered;
  }
};

} // namespace
