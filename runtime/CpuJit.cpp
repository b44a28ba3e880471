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
#include "qnt/support/CompiledCode.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/DynamicLibrary.h"
#include "llvm/Support/Errno.h"
#include "llvm/Support/MathExtras.h"
#include "llvm/Support/TargetSelect.h"

#include <cstring>
#include <mutex>
#include <optional>
#include <sys/mman.h>
#include <unistd.h>

using namespace mlir;
using namespace ::qnt::runtime;

//===----------------------------------------------------------------------===//
// HostTensor
//===----------------------------------------------------------------------===//

/// Bytes per element as the lowered code strides through a buffer: LLVM's
/// allocation size, which is the byte width only for the types that
/// isSupportedElementType() admits (i33 is allocated 8 bytes, i24 4, f80
/// 16), so nothing else reaches a buffer.
static int64_t elementBytes(Type type) {
  return (type.getIntOrFloatBitWidth() + 7) / 8;
}

bool ::qnt::runtime::isSupportedElementType(Type type) {
  if (auto integer = dyn_cast<IntegerType>(type)) {
    unsigned width = integer.getWidth();
    return width == 1 || width == 8 || width == 16 || width == 32 ||
           width == 64;
  }
  return type.isF16() || type.isBF16() || type.isF32() || type.isF64();
}

namespace qnt::runtime {
int64_t physicalMemoryBytes() {
  return int64_t(sysconf(_SC_PHYS_PAGES)) * int64_t(sysconf(_SC_PAGESIZE));
}
} // namespace qnt::runtime

/// Byte size of a host buffer of static `type`, or nothing when it overflows
/// int64_t.
static std::optional<int64_t> bufferBytes(RankedTensorType type) {
  int64_t bytes = elementBytes(type.getElementType());
  for (int64_t dim : type.getShape())
    if (llvm::MulOverflow(bytes, dim, bytes))
      return std::nullopt;
  return bytes;
}

HostTensor::HostTensor(RankedTensorType type) : type(type) {
  storage = std::make_shared<std::vector<uint64_t>>((numBytes() + 7) / 8, 0);
  view = storage->data();
}

HostTensor::HostTensor(RankedTensorType type, const void *data)
    : type(type), view(data) {}

HostTensor HostTensor::deepCopy() const {
  HostTensor copy(type);
  std::memcpy(copy.data(), data(), numBytes());
  return copy;
}

int64_t HostTensor::numBytes() const {
  return numElements() * elementBytes(type.getElementType());
}

//===----------------------------------------------------------------------===//
// Memref descriptors
//===----------------------------------------------------------------------===//

namespace {
/// The C-interface descriptor of a contiguous memref of any rank.
struct Descriptor {
  std::vector<int64_t> words;
  explicit Descriptor(const HostTensor &t)
      : words(::qnt::contiguousDescriptor(t.data(),
                                          t.getType().getShape().data(),
                                          t.getType().getRank())) {}
};
} // namespace

//===----------------------------------------------------------------------===//
// CompiledModule
//===----------------------------------------------------------------------===//

CompiledModule::~CompiledModule() = default;

/// Every public function with a body.
static SmallVector<func::FuncOp> publicFunctions(ModuleOp module) {
  SmallVector<func::FuncOp> functions;
  for (auto func : module.getOps<func::FuncOp>())
    if (func.isPublic() && !func.isExternal())
      functions.push_back(func);
  return functions;
}

/// The functions to compile: `names`, or every public function with a body.
static FailureOr<SmallVector<func::FuncOp>>
findEntries(ModuleOp module, ArrayRef<std::string> names) {
  SmallVector<func::FuncOp> entries;
  for (const std::string &name : names) {
    auto func = module.lookupSymbol<func::FuncOp>(name);
    if (!func || func.isExternal())
      return module.emitError() << "no function '" << name << "' to run";
    entries.push_back(func);
  }
  if (names.empty())
    entries = publicFunctions(module);
  if (entries.empty())
    return module.emitError() << "the module has no public function to run";
  return entries;
}

/// Checks that host buffers of `tensor` can be made: a supported element
/// type, and for a static shape a byte size that fits in int64_t.
static LogicalResult checkBufferType(func::FuncOp func, RankedTensorType tensor,
                                     StringRef what, size_t index) {
  Type element = tensor.getElementType();
  if (!isSupportedElementType(element))
    return func.emitError()
           << what << " #" << index << " has element type " << element
           << ", which the CPU runner cannot pass; supported: i1, i8, i16, "
              "i32, i64, f16, bf16, f32, f64";
  if (tensor.hasStaticShape() && !bufferBytes(tensor))
    return func.emitError() << what << " #" << index << " of type " << tensor
                            << " does not fit in memory (its byte size "
                               "overflows 64 bits)";
  return success();
}

/// Reads the signature of `func` after qnt-bind-params.
static FailureOr<EntrySignature> readSignature(func::FuncOp func) {
  EntrySignature sig;
  sig.name = func.getSymName().str();
  for (auto [index, type] : llvm::enumerate(func.getArgumentTypes())) {
    auto tensor = dyn_cast<RankedTensorType>(type);
    if (!tensor)
      return func.emitError() << "argument #" << index
                              << " must be a ranked tensor, got " << type;
    if (failed(checkBufferType(func, tensor, "argument", index)))
      return failure();
    if (auto name = func.getArgAttrOfType<StringAttr>(
            index, mlir::qnt::kParamArgAttrName)) {
      if (!tensor.hasStaticShape())
        return func.emitError() << "parameter '" << name.getValue()
                                << "' must have a static shape";
      sig.params.emplace_back(name.str(), tensor);
    } else {
      sig.inputs.push_back(tensor);
    }
  }
  for (auto [index, type] : llvm::enumerate(func.getResultTypes())) {
    auto tensor = dyn_cast<RankedTensorType>(type);
    if (!tensor)
      return func.emitError() << "results must be ranked tensors, got "
                              << type;
    if (failed(checkBufferType(func, tensor, "result", index)))
      return failure();
    sig.results.push_back(tensor);
  }
  return sig;
}


namespace qnt::runtime {
FailureOr<std::vector<EntrySignature>>
bindEntries(ModuleOp module, ArrayRef<std::string> entries) {
  MLIRContext *ctx = module.getContext();
  FailureOr<SmallVector<func::FuncOp>> funcs = findEntries(module, entries);
  if (failed(funcs))
    return failure();
  for (func::FuncOp func : *funcs) {
    func.setPublic();
    func->setAttr("llvm.emit_c_interface", UnitAttr::get(ctx));
  }

  PassManager bind(ctx);
  bind.addPass(mlir::qnt::createQntBindParams());
  if (failed(bind.run(module)))
    return failure();
  std::vector<EntrySignature> signatures;
  for (func::FuncOp func : *funcs) {
    FailureOr<EntrySignature> sig = readSignature(func);
    if (failed(sig))
      return failure();
    signatures.push_back(std::move(*sig));
    // The names are recorded; LLVM has no use for the argument attributes.
    for (unsigned i = 0, e = func.getNumArguments(); i < e; ++i)
      func.removeArgAttr(i, mlir::qnt::kParamArgAttrName);
  }
  return signatures;
}

FailureOr<LoweredCpuModule> lowerForCpu(ModuleOp module,
                                        ArrayRef<std::string> entries,
                                        const CpuCompileOptions &cpuOptions) {
  MLIRContext *ctx = module.getContext();
  FailureOr<std::vector<EntrySignature>> signatures =
      bindEntries(module, entries);
  if (failed(signatures))
    return failure();
  LoweredCpuModule lowered;
  lowered.signatures = std::move(*signatures);

  PassManager lower(ctx);
  if (failed(mlir::qnt::buildCpuPipeline(lower, cpuOptions.threads,
                                               cpuOptions.int8Activations,
                                               cpuOptions.matmulOptions,
                                               cpuOptions.gpuLoopMapping)) ||
      failed(lower.run(module)))
    return failure();
  // Kernels split over threads call the OpenMP runtime.
  lowered.usesOpenMP = module
                           .walk([](Operation *op) {
                             return op->getDialect() &&
                                            op->getDialect()->getNamespace() ==
                                                "omp"
                                        ? WalkResult::interrupt()
                                        : WalkResult::advance();
                           })
                           .wasInterrupted();
  return lowered;
}
} // namespace qnt::runtime

FailureOr<std::unique_ptr<CompiledModule>>
CompiledModule::compile(ModuleOp module, ArrayRef<std::string> entries,
                        const CpuCompileOptions &cpuOptions) {
  FailureOr<LoweredCpuModule> lowered =
      lowerForCpu(module, entries, cpuOptions);
  if (failed(lowered))
    return failure();
  std::unique_ptr<CompiledModule> compiled(new CompiledModule);
  compiled->sigs = std::move(lowered->signatures);
  bool usesOpenMP = lowered->usesOpenMP;

  ::qnt::keepFreedMemory();
  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();
  ExecutionEngineOptions options;
  options.jitCodeGenOptLevel = llvm::CodeGenOptLevel::Aggressive;
  // ExecutionEngineOptions::transformer is a function_ref: the callable
  // must outlive ExecutionEngine::create, so it is kept in a local.
  // The optimizer needs the host's target machine: without one, LLVM's cost
  // model knows no vector registers and the loop vectorizer leaves every
  // loop nest outside the matmul kernels (norms, rotary embedding,
  // attention) scalar.
  auto hostBuilder = llvm::orc::JITTargetMachineBuilder::detectHost();
  if (!hostBuilder)
    return module.emitError() << "cannot describe the host for the JIT: "
                              << llvm::toString(hostBuilder.takeError());
  hostBuilder->setCodeGenOptLevel(llvm::CodeGenOptLevel::Aggressive);
  auto hostMachine = hostBuilder->createTargetMachine();
  if (!hostMachine)
    return module.emitError() << "cannot create the host target machine: "
                              << llvm::toString(hostMachine.takeError());
  std::function<llvm::Error(llvm::Module *)> transformer =
      makeOptimizingTransformer(3, 0, hostMachine->get());
  options.transformer = transformer;
  SmallVector<StringRef> libs = {QNT_C_RUNNER_UTILS};
  if (usesOpenMP)
    libs.push_back(QNT_OPENMP_RUNTIME);
  options.sharedLibPaths = libs;
  auto engine = ExecutionEngine::create(module, options);
  if (!engine)
    return module.emitError() << "JIT compilation failed: "
                              << llvm::toString(engine.takeError());
  compiled->engine = std::move(*engine);
  compiled->hugePageWeights = cpuOptions.hugePageWeights;
  // ORC materializes code at the first lookup: do it now, so that compile
  // time is spent (and reported) here and the first call runs at full speed.
  for (const EntrySignature &sig : compiled->sigs)
    if (llvm::Expected<void (*)(void **)> entry =
            compiled->engine->lookupPacked("_mlir_ciface_" + sig.name);
        !entry)
      return module.emitError() << "JIT compilation failed: "
                                << llvm::toString(entry.takeError());
  return compiled;
}

bool ::qnt::runtime::pauseIdleThreads() {
  // The runtime is loaded with the first threaded kernel (sharedLibPaths
  // above), so its entry point is looked up rather than linked. OpenMP 5.0:
  // int omp_pause_resource_all(omp_pause_resource_t), omp_pause_hard = 2,
  // 0 on success. A hard pause ends the threads; a soft one (1) should let
  // them sleep, but LLVM 22's runtime leaves them spinning.
  // Looked up in that library, not process-wide: the process may also hold
  // GCC's libgomp (host code built with -fopenmp), whose pause does not
  // touch LLVM's threads.
  using PauseAll = int (*)(int);
  static const PauseAll pause = []() -> PauseAll {
    std::string error;
    llvm::sys::DynamicLibrary runtime =
        llvm::sys::DynamicLibrary::getPermanentLibrary(QNT_OPENMP_RUNTIME,
                                                       &error);
    if (!runtime.isValid())
      return nullptr;
    return reinterpret_cast<PauseAll>(
        runtime.getAddressOfSymbol("omp_pause_resource_all"));
  }();
  constexpr int kOmpPauseHard = 2;
  return pause && pause(kOmpPauseHard) == 0;
}

const EntrySignature *CompiledModule::signature(StringRef entry) const {
  for (const EntrySignature &sig : sigs)
    if (sig.name == entry)
      return &sig;
  return nullptr;
}

/// Views or copies one stored parameter as `type`.
static FailureOr<HostTensor> bindParam(const mlir::qnt::ParamStore &store,
                                       StringRef name, RankedTensorType type,
                                       Location loc) {
  FailureOr<mlir::qnt::ParamView> view = store.resolve(loc, name, type);
  if (failed(view))
    return failure();
  int64_t storedSize = ::qnt::io::dtypeSize(view->info->dtype);
  int64_t wantSize = elementBytes(type.getElementType());
  bool aligned =
      reinterpret_cast<uintptr_t>(view->data) % uintptr_t(wantSize) == 0;
  if (storedSize == wantSize && aligned)
    return HostTensor(type, view->data);
  // Misaligned or narrower in the file: copy (widening to f32 if needed).
  HostTensor copy(type);
  if (storedSize == wantSize) {
    std::memcpy(copy.data(), view->data, copy.numBytes());
  } else {
    for (int64_t i = 0, e = copy.numElements(); i < e; ++i)
      copy.f32()[i] = mlir::qnt::loadAsF32(view->info->dtype,
                                           view->data + i * storedSize);
  }
  return copy;
}

LogicalResult CompiledModule::bindParams(const mlir::qnt::ParamStore &store,
                                         Location loc) {
  boundParams.clear();
  for (const EntrySignature &sig : sigs)
    for (const auto &[name, type] : sig.params) {
      auto it = boundParams.find(name);
      if (it != boundParams.end()) {
        if (it->second.getType() != type)
          return emitError(loc) << "parameter '" << name << "' is used as both "
                                << it->second.getType() << " and " << type;
        continue;
      }
      FailureOr<HostTensor> bound = bindParam(store, name, type, loc);
      if (failed(bound))
        return failure();
      boundParams.try_emplace(name, std::move(*bound));
    }
  return hugePageWeights ? moveParamsToHugePages(loc) : success();
}

LogicalResult CompiledModule::moveParamsToHugePages(Location loc) {
  // bindParams replaced every view: an arena of an earlier binding is free.
  paramArena.reset();
  arenaBytes = 0;
  constexpr size_t kHugePage = size_t(2) << 20;
  constexpr size_t kAlign = 64;
  // Sorted by name: the layout does not depend on the map's hash order.
  std::vector<llvm::StringMapEntry<HostTensor> *> params;
  for (auto &entry : boundParams)
    params.push_back(&entry);
  llvm::sort(params, [](auto *a, auto *b) { return a->getKey() < b->getKey(); });
  std::vector<size_t> offsets;
  size_t bytes = 0;
  for (auto *param : params) {
    offsets.push_back(bytes);
    bytes += llvm::alignTo(size_t(param->getValue().numBytes()), kAlign);
  }
  if (bytes == 0)
    return success();
  // Over-allocated by a huge page so that the arena can start on one.
  size_t mapped = llvm::alignTo(bytes, kHugePage) + kHugePage;
  void *map = ::mmap(nullptr, mapped, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (map == MAP_FAILED)
    return emitError(loc) << "cannot allocate " << bytes
                          << " bytes for the parameters in huge pages: "
                          << llvm::sys::StrError(errno);
  paramArena = std::shared_ptr<void>(
      map, [mapped](void *p) { ::munmap(p, mapped); });
  arenaBytes = int64_t(bytes);
  auto *base = reinterpret_cast<uint8_t *>(
      llvm::alignTo(reinterpret_cast<uintptr_t>(map), kHugePage));
  // Advice only: where transparent huge pages are off ("never"), the arena
  // is ordinary anonymous memory.
  (void)::madvise(base, llvm::alignTo(bytes, kHugePage), MADV_HUGEPAGE);
  for (auto [param, offset] : llvm::zip(params, offsets)) {
    HostTensor &tensor = param->getValue();
    if (tensor.numBytes() > 0)
      std::memcpy(base + offset, tensor.data(), tensor.numBytes());
    tensor = HostTensor(tensor.getType(), base + offset);
  }
  return success();
}

LogicalResult CompiledModule::rebindParam(StringRef name, HostTensor tensor,
                                          Location loc) {
  auto it = boundParams.find(name);
  if (it == boundParams.end())
    return emitError(loc) << "no bound parameter '" << name << "'";
  if (it->second.getType() != tensor.getType())
    return emitError(loc) << "parameter '" << name << "' is bound as "
                          << it->second.getType() << ", cannot rebind it as "
                          << tensor.getType();
  it->second = std::move(tensor);
  return success();
}

/// True if `actual` (static) is an instance of `expected`.
static bool matchesType(RankedTensorType expected, RankedTensorType actual) {
  if (expected.getElementType() != actual.getElementType() ||
      expected.getRank() != actual.getRank())
    return false;
  for (auto [want, have] : llvm::zip(expected.getShape(), actual.getShape()))
    if (!ShapedType::isDynamic(want) && want != have)
      return false;
  return true;
}

LogicalResult CompiledModule::call(StringRef entry, ArrayRef<HostTensor> inputs,
                                   std::vector<HostTensor> &results,
                                   Location loc,
                                   ArrayRef<RankedTensorType> resultTypes) {
  const EntrySignature *sig = signature(entry);
  if (!sig)
    return emitError(loc) << "no compiled function '" << entry << "'";
  if (inputs.size() != sig->inputs.size())
    return emitError(loc) << "'" << sig->name << "' takes "
                          << sig->inputs.size() << " inputs, got "
                          << inputs.size();
  for (auto [index, input] : llvm::enumerate(inputs))
    if (!matchesType(sig->inputs[index], input.getType()))
      return emitError(loc) << "input #" << index << " of '" << sig->name
                            << "' must be " << sig->inputs[index] << ", got "
                            << input.getType();
  if (!resultTypes.empty() && resultTypes.size() != sig->results.size())
    return emitError(loc) << "'" << sig->name << "' has "
                          << sig->results.size() << " results, "
                          << resultTypes.size() << " result types given";

  results.clear();
  // Results are allocated here: refuse sizes that cannot be allocated rather
  // than die in the allocator (LLVM's out-of-memory handler aborts).
  const int64_t memoryBytes = physicalMemoryBytes();
  int64_t resultBytes = 0;
  for (auto [index, type] : llvm::enumerate(sig->results)) {
    RankedTensorType actual = resultTypes.empty() ? type : resultTypes[index];
    if (!actual.hasStaticShape() || !matchesType(type, actual))
      return emitError(loc) << "result #" << index << " of '" << sig->name
                            << "' is " << type << "; give a static instance"
                            << " of it, got " << actual;
    std::optional<int64_t> bytes = bufferBytes(actual);
    if (!bytes || llvm::AddOverflow(resultBytes, *bytes, resultBytes) ||
        resultBytes > memoryBytes)
      return emitError(loc) << "the results of '" << sig->name
                            << "' need more than this machine's "
                            << memoryBytes << " bytes of memory (result #"
                            << index << " is " << actual << ")";
  }
  for (auto [index, type] : llvm::enumerate(sig->results))
    results.emplace_back(resultTypes.empty() ? type : resultTypes[index]);

  std::vector<Descriptor> descriptors;
  for (const HostTensor &t : inputs)
    descriptors.emplace_back(t);
  for (const auto &param : sig->params) {
    auto it = boundParams.find(param.first);
    if (it == boundParams.end())
      return emitError(loc) << "parameters of '" << sig->name
                            << "' are not bound";
    descriptors.emplace_back(it->second);
  }
  for (const HostTensor &t : results)
    descriptors.emplace_back(t);
  std::vector<void *> pointers;
  for (Descriptor &d : descriptors)
    pointers.push_back(d.words.data());
  std::vector<void *> packed;
  for (void *&p : pointers)
    packed.push_back(&p);

  if (llvm::Error error =
          engine->invokePacked("_mlir_ciface_" + sig->name, packed))
    return emitError(loc) << "call failed: " << llvm::toString(std::move(error));
  return success();
}

//===----------------------------------------------------------------------===//
// CompiledFunction
//===----------------------------------------------------------------------===//

CompiledFunction::~CompiledFunction() = default;
CompiledFunction::CompiledFunction(CompiledFunction &&) = default;

FailureOr<CompiledFunction> CompiledFunction::compile(ModuleOp module,
                                                      StringRef entry,
                                                      const CpuCompileOptions &options) {
  SmallVector<std::string> entries;
  if (!entry.empty()) {
    entries.push_back(entry.str());
  } else {
    SmallVector<func::FuncOp> candidates = publicFunctions(module);
    if (candidates.size() != 1)
      return module.emitError() << "found " << candidates.size()
                                << " public functions; name one with --entry";
    entries.push_back(candidates.front().getSymName().str());
  }
  FailureOr<std::unique_ptr<CompiledModule>> compiled =
      CompiledModule::compile(module, entries, options);
  if (failed(compiled))
    return failure();
  CompiledFunction function;
  function.module = std::move(*compiled);
  function.sig = &function.module->signatures().front();
  for (RankedTensorType type : function.sig->inputs)
    if (!type.hasStaticShape())
      return module.emitError() << "'" << function.sig->name
                                << "' has a dynamic input " << type;
  return function;
}
