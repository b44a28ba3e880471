//===- CpuJit.cpp - Compile and call qnt functions on the CPU ---*- C++ -*-===//
//
// See CpuJit.h. Calls go through the `_mlir_ciface_` wrapper: every memref
// argument is passed as a pointer to a descriptor {allocated, aligned,
// offset, sizes[rank], strides[rank]}, results as trailing out-parameters
// (buffer-results-to-out-params in qnt-cpu-pipeline).
//
//===----------------------------------------------------------------------===//

#include "qnt/runtime/CpuJit.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/TargetSelect.h"

#include <cstring>

using namespace mlir;
using namespace ::qnt::runtime;

//===----------------------------------------------------------------------===//
// HostTensor
//===----------------------------------------------------------------------===//

static int64_t elementBytes(Type type) {
  return (type.getIntOrFloatBitWidth() + 7) / 8;
}

HostTensor::HostTensor(RankedTensorType type) : type(type) {
  storage = std::make_shared<std::vector<uint64_t>>((numBytes() + 7) / 8, 0);
  view = storage->data();
}

HostTensor::HostTensor(RankedTensorType type, const void *data)
    : type(type), view(data) {}

int64_t HostTensor::numBytes() const {
  return numElements() * elementBytes(type.getElementType());
}

//===----------------------------------------------------------------------===//
// Memref descriptors
//===----------------------------------------------------------------------===//

namespace {
/// The C-interface descriptor of a contiguous memref of any rank, as an
/// array of 64-bit words.
struct Descriptor {
  std::vector<int64_t> words;
  explicit Descriptor(const HostTensor &t) {
    ArrayRef<int64_t> shape = t.getType().getShape();
    int64_t rank = shape.size();
    words.assign(3 + 2 * rank, 0);
    auto pointer = reinterpret_cast<int64_t>(t.data());
    words[0] = words[1] = pointer;
    int64_t stride = 1;
    for (int64_t d = rank - 1; d >= 0; --d) {
      words[3 + d] = shape[d];
      words[3 + rank + d] = stride;
      stride *= shape[d];
    }
  }
};
} // namespace

//===----------------------------------------------------------------------===//
// CompiledFunction
//===----------------------------------------------------------------------===//

CompiledFunction::~CompiledFunction() = default;
CompiledFunction::CompiledFunction(CompiledFunction &&) = default;

/// The entry function: `name`, or the only public function with a body.
static FailureOr<func::FuncOp> findEntry(ModuleOp module, StringRef name) {
  if (!name.empty()) {
    auto func = module.lookupSymbol<func::FuncOp>(name);
    if (!func || func.isExternal())
      return module.emitError() << "no function '" << name << "' to run";
    return func;
  }
  SmallVector<func::FuncOp> candidates;
  for (auto func : module.getOps<func::FuncOp>())
    if (func.isPublic() && !func.isExternal())
      candidates.push_back(func);
  if (candidates.size() != 1)
    return module.emitError() << "found " << candidates.size()
                              << " public functions; name one with --entry";
  return candidates.front();
}

/// Reads the signature of `func` after qnt-bind-params.
static FailureOr<EntrySignature> readSignature(func::FuncOp func) {
  EntrySignature sig;
  sig.name = func.getSymName().str();
  for (auto [index, type] : llvm::enumerate(func.getArgumentTypes())) {
    auto tensor = dyn_cast<RankedTensorType>(type);
    if (!tensor || !tensor.hasStaticShape())
      return func.emitError() << "argument #" << index
                              << " must be a static tensor, got " << type;
    if (auto name = func.getArgAttrOfType<StringAttr>(index,
                                                       mlir::qnt::kParamArgAttrName))
      sig.params.emplace_back(name.str(), tensor);
    else
      sig.inputs.push_back(tensor);
  }
  for (Type type : func.getResultTypes()) {
    auto tensor = dyn_cast<RankedTensorType>(type);
    if (!tensor || !tensor.hasStaticShape())
      return func.emitError() << "results must be static tensors, got "
                              << type;
    sig.results.push_back(tensor);
  }
  return sig;
}

FailureOr<CompiledFunction> CompiledFunction::compile(ModuleOp module,
                                                      StringRef entry) {
  MLIRContext *ctx = module.getContext();
  FailureOr<func::FuncOp> func = findEntry(module, entry);
  if (failed(func))
    return failure();
  func->setPublic();
  (*func)->setAttr("llvm.emit_c_interface", UnitAttr::get(ctx));

  PassManager bind(ctx);
  bind.addPass(mlir::qnt::createQntBindParams());
  if (failed(bind.run(module)))
    return failure();
  CompiledFunction compiled;
  FailureOr<EntrySignature> sig = readSignature(*func);
  if (failed(sig))
    return failure();
  compiled.sig = std::move(*sig);
  // The names are recorded; LLVM has no use for the argument attributes.
  for (unsigned i = 0, e = func->getNumArguments(); i < e; ++i)
    func->removeArgAttr(i, mlir::qnt::kParamArgAttrName);

  PassManager lower(ctx);
  if (failed(mlir::qnt::buildCpuPipeline(lower)) ||
      failed(lower.run(module)))
    return failure();

  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();
  ExecutionEngineOptions options;
  options.jitCodeGenOptLevel = llvm::CodeGenOptLevel::Aggressive;
  options.transformer = makeOptimizingTransformer(3, 0, nullptr);
  SmallVector<StringRef> libs = {QNT_C_RUNNER_UTILS};
  options.sharedLibPaths = libs;
  auto engine = ExecutionEngine::create(module, options);
  if (!engine)
    return module.emitError() << "JIT compilation failed: "
                              << llvm::toString(engine.takeError());
  compiled.engine = std::move(*engine);
  return compiled;
}

LogicalResult CompiledFunction::bindParams(const mlir::qnt::ParamStore &store,
                                           Location loc) {
  boundParams.clear();
  for (const auto &[name, type] : sig.params) {
    FailureOr<mlir::qnt::ParamView> view = store.resolve(loc, name, type);
    if (failed(view))
      return failure();
    int64_t storedSize = ::qnt::io::dtypeSize(view->info->dtype);
    int64_t wantSize = elementBytes(type.getElementType());
    bool aligned =
        reinterpret_cast<uintptr_t>(view->data) % uintptr_t(wantSize) == 0;
    if (storedSize == wantSize && aligned) {
      boundParams.emplace_back(type, view->data);
      continue;
    }
    // Misaligned or narrower in the file: copy (widening to f32 if needed).
    HostTensor copy(type);
    if (storedSize == wantSize) {
      std::memcpy(copy.data(), view->data, copy.numBytes());
    } else {
      for (int64_t i = 0, e = copy.numElements(); i < e; ++i)
        copy.f32()[i] = mlir::qnt::loadAsF32(view->info->dtype,
                                             view->data + i * storedSize);
    }
    boundParams.push_back(std::move(copy));
  }
  return success();
}

LogicalResult CompiledFunction::call(const std::vector<HostTensor> &inputs,
                                     std::vector<HostTensor> &results,
                                     Location loc) {
  if (inputs.size() != sig.inputs.size())
    return emitError(loc) << "'" << sig.name << "' takes " << sig.inputs.size()
                          << " inputs, got " << inputs.size();
  for (auto [index, input] : llvm::enumerate(inputs))
    if (input.getType() != sig.inputs[index])
      return emitError(loc) << "input #" << index << " must be "
                            << sig.inputs[index] << ", got "
                            << input.getType();
  if (boundParams.size() != sig.params.size())
    return emitError(loc) << "parameters are not bound";

  results.clear();
  for (RankedTensorType type : sig.results)
    results.emplace_back(type);

  std::vector<Descriptor> descriptors;
  for (const HostTensor &t : inputs)
    descriptors.emplace_back(t);
  for (const HostTensor &t : boundParams)
    descriptors.emplace_back(t);
  for (const HostTensor &t : results)
    descriptors.emplace_back(t);
  std::vector<void *> pointers;
  for (Descriptor &d : descriptors)
    pointers.push_back(d.words.data());
  std::vector<void *> packed;
  for (void *&p : pointers)
    packed.push_back(&p);

  if (llvm::Error error =
          engine->invokePacked("_mlir_ciface_" + sig.name, packed))
    return emitError(loc) << "call failed: " << llvm::toString(std::move(error));
  return success();
}
