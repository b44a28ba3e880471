//===- GpuMatmul.cpp - Compile and launch fused GPU matmuls -----*- C++ -*-===//
//
// See GpuMatmul.h.
//
//===----------------------------------------------------------------------===//

#include "qnt/runtime/GpuMatmul.h"

#include "passes/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"

using namespace mlir;
using namespace ::qnt::runtime;
namespace cuda = ::qnt::cuda;

namespace qnt::runtime {
int64_t elementBytes(Type type) {
  return (type.getIntOrFloatBitWidth() + 7) / 8;
}
} // namespace qnt::runtime

std::string GpuMatmulProgram::kernelName(size_t index) {
  return "qnt_matmul_k" + std::to_string(index);
}

FailureOr<GpuMatmulProgram>
GpuMatmulProgram::compile(const GpuMatmulProblem &problem, StringRef chip,
                          Location loc, StringRef format) {
  std::string message = problem.options.verify();
  if (!message.empty())
    return emitError(loc) << "invalid GPU matmul options: " << message;

  GpuMatmulProgram program;
  program.prob = problem;
  program.specs = mlir::qnt::selectGpuMatmulKernels(
      problem.encoding, problem.m, problem.n, problem.k, problem.inputType,
      problem.outputType, problem.options);

  MLIRContext *ctx = loc.getContext();
  OpBuilder builder(ctx);
  OwningOpRef<ModuleOp> module = ModuleOp::create(loc);
  (*module)->setAttr(gpu::GPUDialect::getContainerModuleAttrName(),
                     builder.getUnitAttr());
  builder.setInsertionPointToEnd(module->getBody());
  auto kernels = gpu::GPUModuleOp::create(builder, loc, "qnt_kernels");
  for (auto [index, spec] : llvm::enumerate(program.specs))
    mlir::qnt::buildGpuMatmulKernel(builder, kernels, kernelName(index), spec);

  mlir::qnt::GpuTargetOptions target;
  target.chips = {chip.str()};
  target.format = format.str();
  if (failed(mlir::qnt::runPassPipeline(*module,
                                  mlir::qnt::getGpuDevicePipeline(target))))
    return failure();

  auto binary = module->lookupSymbol<gpu::BinaryOp>("qnt_kernels");
  if (!binary || binary.getObjects().size() != 1)
    return emitError(loc) << "GPU pipeline produced no kernel image for "
                          << chip;
  auto object = cast<gpu::ObjectAttr>(binary.getObjects()[0]);
  program.bytes = object.getObject().getValue().str();
  return program;
}

llvm::Expected<GpuMatmul> GpuMatmul::load(const GpuMatmulProgram &program) {
  llvm::Expected<cuda::Module> module = cuda::Module::load(
      llvm::ArrayRef<char>(program.image().data(), program.image().size()));
  if (!module)
    return module.takeError();
  GpuMatmul matmul(program, std::move(*module));
  for (size_t i = 0; i < matmul.specs.size(); ++i) {
    llvm::Expected<cuda::FunctionHandle> function =
        matmul.module.function(GpuMatmulProgram::kernelName(i));
    if (!function)
      return function.takeError();
    matmul.functions.push_back(*function);
  }
  return std::move(matmul);
}

const mlir::qnt::GpuMatmulKernelSpec &GpuMatmul::kernelFor(int64_t m) const {
  return mlir::qnt::pickGpuMatmulKernel(specs, m);
}

namespace {

/// Kernel parameters in MLIR's default memref calling convention: for a
/// rank-r memref, allocated pointer, aligned pointer, offset, r sizes and r
/// strides (row-major), each an 8-byte parameter.
class KernelParams {
public:
  void addMemref(uint64_t address, llvm::ArrayRef<int64_t> shape) {
    values.push_back(address);
    values.push_back(address);
    values.push_back(0);
    for (int64_t size : shape)
      values.push_back(uint64_t(size));
    int64_t stride = 1;
    llvm::SmallVector<uint64_t> strides(shape.size());
    for (size_t i = shape.size(); i-- > 0;) {
      strides[i] = uint64_t(stride);
      stride *= shape[i];
    }
    values.append(strides.begin(), strides.end());
  }
  /// Pointers to every value, as cuLaunchKernel takes them. Valid until the
  /// next addMemref.
  std::vector<void *> pointers() {
    std::vector<void *> result;
    for (uint64_t &v : values)
      result.push_back(&v);
    return result;
  }

private:
  llvm::SmallVector<uint64_t, 64> values;
};

llvm::Error sizeError(const char *what, size_t have, int64_t need) {
  return llvm::createStringError("GPU matmul: %s buffer has %zu bytes, needs "
                                 "%lld",
                                 what, have, (long long)need);
}

} // namespace

llvm::Error
GpuMatmul::run(int64_t m, const cuda::DeviceBuffer &x,
               llvm::ArrayRef<const cuda::DeviceBuffer *> components,
               cuda::DeviceBuffer &out) const {
  if (m < 0)
    return llvm::createStringError("GPU matmul: negative row count");
  SmallVector<RankedTensorType> componentTypes =
      mlir::qnt::gpuMatmulComponentTypes(prob.inputType.getContext(),
                                         prob.encoding, prob.n, prob.k);
  if (components.size() != componentTypes.size())
    return llvm::createStringError(
        "GPU matmul: %zu component buffers given, the encoding has %zu",
        components.size(), componentTypes.size());
  // Buffers are checked before anything is launched: a kernel reading past
  // an allocation is not an error the driver reports reliably.
  int64_t xBytes = m * prob.k * elementBytes(prob.inputType);
  int64_t outBytes = m * prob.n * elementBytes(prob.outputType);
  if (int64_t(x.size()) < xBytes)
    return sizeError("input", x.size(), xBytes);
  if (int64_t(out.size()) < outBytes)
    return sizeError("output", out.size(), outBytes);
  KernelParams params;
  params.addMemref(x.address(), {m, prob.k});
  for (auto [buffer, type] : llvm::zip(components, componentTypes)) {
    int64_t need = type.getNumElements() * elementBytes(type.getElementType());
    if (int64_t(buffer->size()) < need)
      return sizeError("component", buffer->size(), need);
    params.addMemref(buffer->address(), type.getShape());
  }
  params.addMemref(out.address(), {m, prob.n});
  if (m == 0)
    return llvm::Error::success();

  const mlir::qnt::GpuMatmulKernelSpec &spec = kernelFor(m);
  size_t index = &spec - specs.data();
  std::array<int64_t, 3> grid = spec.gridSize(m), block = spec.blockSize();
  std::vector<void *> pointers = params.pointers();
  return cuda::launch(functions[index],
                      {unsigned(grid[0]), unsigned(grid[1]), unsigned(grid[2])},
                      {unsigned(block[0]), unsigned(block[1]),
                       unsigned(block[2])},
                      /*sharedBytes=*/0, pointers.data());
}
