//===- Package.cpp - Compile a model into a deployable artifact -----------===//
//
// See Package.h. Each CPU image is the JIT's lowering (lowerForCpu) of a
// clone of the model, translated to LLVM IR, optimized and compiled for a
// named CPU by a TargetMachine, with one `qnt_packed_<entry>(void **)`
// wrapper per entry so that the runtime calls every entry the same way
// without knowing its arity; ld.lld links the object into a shared object.
// The directory is built under a temporary name next to the target and
// renamed into place once complete.
//
//===----------------------------------------------------------------------===//

#include "qnt/package/Package.h"
#include "qnt/ParamStore.h"
#include "qnt/import/LlamaImporter.h"
#include "qnt/io/Artifact.h"
#include "qnt/io/Checksum.h"
#include "qnt/numerics/Encoding.h"
#include "qnt/runtime/ModelRunner.h"
#include "dialects/qnt/QntDialect.h"

#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/Target/LLVMIR/Export.h"

#include "llvm/ADT/ScopeExit.h"
#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/Target/TargetOptions.h"
#include "llvm/TargetParser/Host.h"

#include <chrono>
#include <map>
#include <unistd.h>

using namespace mlir;
namespace io = ::qnt::io;
namespace runtime = ::qnt::runtime;

const char *::qnt::package::toolVersion() { return QNT_VERSION_STRING; }

namespace {

/// One CPU image to build: the LLVM CPU and features it is compiled for
/// and the kernel options that keep its code within them.
struct ImageSpec {
  std::string name;
  std::string cpu;
  std::string features; ///< "+avx512vnni,+avx512vbmi" beyond the CPU's
  /// The CPU whose costs the optimizer and scheduler assume ("" for cpu).
  std::string tuneCpu;
  std::vector<std::string> requiredFeatures;
  runtime::CpuCompileOptions options;
};

} // namespace

/// The image for this machine. On x86-64 it is compiled for the highest
/// x86-64 feature level the CPU has plus the checkable extensions it has
/// (AVX-512 VNNI, VBMI, ...), tuned for the CPU: exactly what the runtime
/// can verify before it runs the image, so that a CPU that lacks one gets
/// an error rather than an illegal instruction (a CPU name such as znver5
/// implies features no check covers). Elsewhere it is compiled for the CPU
/// by name and records no features.
static ImageSpec nativeImageSpec() {
  ImageSpec native;
  native.name = "native";
  native.tuneCpu = llvm::sys::getHostCPUName().str();
  llvm::Triple triple(llvm::sys::getProcessTriple());
  if (triple.getArch() != llvm::Triple::x86_64) {
    native.cpu = native.tuneCpu;
    return native;
  }
  native.cpu = "x86-64";
  for (const char *level : {"x86-64-v4", "x86-64-v3", "x86-64-v2"})
    if (io::hostCpuHasFeature(level)) {
      native.cpu = level;
      native.requiredFeatures.push_back(level);
      break;
    }
  llvm::StringMap<bool> host = llvm::sys::getHostCPUFeatures();
  std::vector<std::string> extensions;
  for (const auto &feature : host)
    if (feature.getValue() && io::isCheckedCpuFeature(feature.getKey().str()))
      extensions.push_back(feature.getKey().str());
  llvm::sort(extensions);
  for (const std::string &feature : extensions) {
    native.features += (native.features.empty() ? "+" : ",+") + feature;
    native.requiredFeatures.push_back(feature);
  }
  return native;
}

/// The images to build: this machine's CPU, and its architecture's baseline.
static std::vector<ImageSpec>
imageSpecs(const ::qnt::package::ArtifactOptions &o) {
  std::vector<ImageSpec> specs;
  ImageSpec native = nativeImageSpec();
  native.options = o.cpu;
  specs.push_back(native);
  llvm::Triple triple(llvm::sys::getProcessTriple());
  if (o.portableImage && triple.getArch() == llvm::Triple::x86_64) {
    ImageSpec portable;
    portable.name = "portable";
    portable.cpu = "x86-64";
    portable.requiredFeatures = {"sse2"};
    portable.options = o.cpu;
    // The kernels pick their instructions from the host's features unless
    // told: generic byte dot products, vectors of two SSE registers.
    std::string extra = "int8-dot=generic vector-width=8";
    portable.options.matmulOptions =
        o.cpu.matmulOptions.empty() ? extra
                                    : o.cpu.matmulOptions + " " + extra;
    specs.push_back(portable);
  }
  return specs;
}

/// Adds `void qnt_packed_<entry>(void **descriptors)` for each entry: it
/// calls `_mlir_ciface_<entry>` with descriptors[0..n), each a pointer to a
/// memref descriptor (inputs, parameters, then results).
static LogicalResult addPackedEntries(llvm::Module &module,
                                      ArrayRef<runtime::EntrySignature> sigs,
                                      Location loc) {
  llvm::LLVMContext &ctx = module.getContext();
  auto *ptr = llvm::PointerType::getUnqual(ctx);
  auto *type =
      llvm::FunctionType::get(llvm::Type::getVoidTy(ctx), {ptr}, false);
  for (const runtime::EntrySignature &sig : sigs) {
    llvm::Function *callee = module.getFunction("_mlir_ciface_" + sig.name);
    if (!callee)
      return emitError(loc) << "the lowered module has no C interface for '"
                            << sig.name << "'";
    size_t expected =
        sig.inputs.size() + sig.params.size() + sig.results.size();
    if (callee->arg_size() != expected)
      return emitError(loc) << "the C interface of '" << sig.name << "' takes "
                            << callee->arg_size() << " arguments, expected "
                            << expected << " memref descriptors";
    auto *wrapper = llvm::Function::Create(
        type, llvm::GlobalValue::ExternalLinkage, "qnt_packed_" + sig.name,
        module);
    llvm::IRBuilder<> b(llvm::BasicBlock::Create(ctx, "entry", wrapper));
    SmallVector<llvm::Value *> args;
    for (llvm::Argument &arg : callee->args()) {
      if (!arg.getType()->isPointerTy())
        return emitError(loc) << "argument #" << arg.getArgNo() << " of '"
                              << sig.name << "''s C interface is not a "
                              << "pointer to a memref descriptor";
      llvm::Value *slot =
          b.CreateConstGEP1_64(ptr, wrapper->getArg(0), arg.getArgNo());
      args.push_back(b.CreateLoad(ptr, slot));
    }
    b.CreateCall(callee, args);
    b.CreateRetVoid();
  }
  return success();
}

/// ld.lld from the LLVM the project was built with, else from PATH.
static std::string findLinker() {
  if (llvm::sys::fs::can_execute(QNT_LLD_PATH))
    return QNT_LLD_PATH;
  if (llvm::ErrorOr<std::string> found = llvm::sys::findProgramByName("ld.lld"))
    return *found;
  return "";
}

/// Compiles the lowered `module` for `spec` into the shared object `soPath`.
/// `adjust`, when given, edits the translated module before it is
/// optimized.
static LogicalResult emitSharedObject(
    ModuleOp module, const ImageSpec &spec,
    ArrayRef<runtime::EntrySignature> sigs, StringRef soPath,
    llvm::function_ref<LogicalResult(llvm::Module &)> adjust = nullptr) {
  Location loc = module.getLoc();
  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();
  llvm::LLVMContext llvmContext;
  std::unique_ptr<llvm::Module> llvmModule =
      translateModuleToLLVMIR(module, llvmContext, "qnt_model");
  if (!llvmModule)
    return emitError(loc) << "cannot translate the lowered model to LLVM IR";
  llvm::Triple triple(llvm::sys::getProcessTriple());
  std::string error;
  const llvm::Target *target = llvm::TargetRegistry::lookupTarget(triple, error);
  if (!target)
    return emitError(loc) << "no LLVM target for " << triple.str() << ": "
                          << error;
  std::unique_ptr<llvm::TargetMachine> machine(target->createTargetMachine(
      triple, spec.cpu, spec.features, llvm::TargetOptions(),
      llvm::Reloc::PIC_, std::nullopt, llvm::CodeGenOptLevel::Aggressive));
  if (!machine)
    return emitError(loc) << "cannot create a target machine for CPU '"
                          << spec.cpu << "'";
  llvmModule->setTargetTriple(triple);
  llvmModule->setDataLayout(machine->createDataLayout());
  if (failed(addPackedEntries(*llvmModule, sigs, loc)))
    return failure();
  if (adjust && failed(adjust(*llvmModule)))
    return failure();
  // Only the wrappers are the image's interface: everything else becomes
  // internal, so that no symbol of the process can take the place of a
  // model function and the optimizer may inline across them.
  for (llvm::Function &function : *llvmModule) {
    if (function.isDeclaration())
      continue;
    if (!function.getName().starts_with("qnt_packed_"))
      function.setLinkage(llvm::GlobalValue::InternalLinkage);
    if (!spec.tuneCpu.empty())
      function.addFnAttr("tune-cpu", spec.tuneCpu);
  }
  if (llvm::Error e =
          makeOptimizingTransformer(3, 0, machine.get())(llvmModule.get()))
    return emitError(loc) << "LLVM optimization failed: "
                          << llvm::toString(std::move(e));

  std::string objectPath = (soPath + ".o").str();
  {
    std::error_code ec;
    llvm::raw_fd_ostream os(objectPath, ec, llvm::sys::fs::OF_None);
    if (ec)
      return emitError(loc) << "cannot write " << objectPath << ": "
                            << ec.message();
    llvm::legacy::PassManager codegen;
    if (machine->addPassesToEmitFile(codegen, os, nullptr,
                                     llvm::CodeGenFileType::ObjectFile))
      return emitError(loc) << "CPU '" << spec.cpu
                            << "' cannot emit object files";
    codegen.run(*llvmModule);
    os.close();
    if (os.has_error())
      return emitError(loc) << "cannot write " << objectPath << ": "
                            << os.error().message();
  }
  llvm::scope_exit removeObject([&] { llvm::sys::fs::remove(objectPath); });
  std::string linker = findLinker();
  if (linker.empty())
    return emitError(loc) << "ld.lld is needed to link the CPU code of an "
                             "artifact (lld-22; scripts/setup.sh installs it)";
  // The code's outside references (libc, libm, the OpenMP runtime, the
  // runtime's memref helpers) stay undefined: the runtime loads what they
  // resolve to before the image.
  SmallVector<StringRef> args = {linker,      "-shared",   "-o",
                                 soPath,      objectPath,  "--hash-style=gnu",
                                 "-z",        "noexecstack", "-z", "now",
                                 "--build-id=sha1"};
  std::string message;
  int status = llvm::sys::ExecuteAndWait(linker, args, std::nullopt, {}, 0, 0,
                                         &message);
  if (status != 0)
    return emitError(loc) << "linking " << soPath << " failed"
                          << (message.empty() ? "" : ": " + message)
                          << " (exit status " << status << ")";
  return success();
}

/// The dtype an element type travels as between the runtime and the code.
static FailureOr<io::DType> dtypeOf(Type element, Location loc) {
  if (element.isInteger(1))
    return io::DType::BOOL;
  std::optional<io::DType> dtype = mlir::qnt::storageDTypeOf(element);
  if (!dtype)
    return emitError(loc) << "element type " << element
                          << " has no artifact dtype";
  return *dtype;
}

static FailureOr<io::ArtifactTensorType> artifactType(RankedTensorType type,
                                                      Location loc) {
  FailureOr<io::DType> dtype = dtypeOf(type.getElementType(), loc);
  if (failed(dtype))
    return failure();
  io::ArtifactTensorType out;
  out.dtype = *dtype;
  for (int64_t d : type.getShape())
    out.shape.push_back(ShapedType::isDynamic(d) ? -1 : d);
  return out;
}

static FailureOr<io::ArtifactEntry>
artifactEntry(const runtime::EntrySignature &sig, Location loc) {
  io::ArtifactEntry entry;
  entry.name = sig.name;
  for (RankedTensorType type : sig.inputs) {
    FailureOr<io::ArtifactTensorType> t = artifactType(type, loc);
    if (failed(t))
      return failure();
    entry.inputs.push_back(*t);
  }
  for (const auto &[name, type] : sig.params) {
    FailureOr<io::ArtifactTensorType> t = artifactType(type, loc);
    if (failed(t))
      return failure();
    entry.params.emplace_back(name, *t);
  }
  for (RankedTensorType type : sig.results) {
    FailureOr<io::ArtifactTensorType> t = artifactType(type, loc);
    if (failed(t))
      return failure();
    entry.results.push_back(*t);
  }
  return entry;
}

/// Writes every parameter the entries read, in the element type they read
/// it as (a float stored narrower in the checkpoint is widened, as the
/// JIT's binding does), to `path`.
static LogicalResult writeWeights(const mlir::qnt::ParamStore &store,
                                  ArrayRef<runtime::EntrySignature> sigs,
                                  StringRef stagingDir, StringRef path,
                                  Location loc) {
  io::SafetensorsWriter writer;
  std::string error;
  if (!writer.setSpillDirectory(stagingDir.str(), &error))
    return emitError(loc) << error;
  std::map<std::string, RankedTensorType> written;
  for (const runtime::EntrySignature &sig : sigs)
    for (const auto &[name, type] : sig.params) {
      auto [it, inserted] = written.try_emplace(name, type);
      if (!inserted) {
        // One tensor in the file: every entry must read it the same way.
        if (it->second != type)
          return emitError(loc) << "parameter '" << name << "' is read as "
                                << it->second << " and as " << type;
        continue;
      }
      FailureOr<mlir::qnt::ParamView> view = store.resolve(loc, name, type);
      FailureOr<io::DType> dtype = dtypeOf(type.getElementType(), loc);
      if (failed(view) || failed(dtype))
        return failure();
      int64_t count = type.getNumElements();
      int64_t storedSize = io::dtypeSize(view->info->dtype);
      int64_t wantSize = io::dtypeSize(*dtype);
      std::vector<int64_t> shape(type.getShape());
      bool added;
      if (storedSize == wantSize) {
        added = writer.add(name, *dtype, shape, view->data, count * wantSize,
                           &error);
      } else {
        // Only floats are stored narrower than they are read (F16/BF16 in
        // the checkpoint, f32 in the code): ParamStore::resolve admits no
        // other difference.
        if (*dtype != io::DType::F32)
          return emitError(loc) << "parameter '" << name << "' is stored as "
                                << io::dtypeName(view->info->dtype)
                                << " and read as " << type;
        std::vector<float> widened(count);
        for (int64_t i = 0; i < count; ++i)
          widened[i] = mlir::qnt::loadAsF32(view->info->dtype,
                                            view->data + i * storedSize);
        added = writer.add(name, *dtype, shape, widened.data(),
                           count * wantSize, &error);
      }
      if (!added)
        return emitError(loc) << path << ": " << error;
      store.releasePages(name);
    }
  if (!writer.write(path.str(), &error))
    return emitError(loc) << error;
  return success();
}

/// The quantized matmuls of `module`: where they are, their encoding and
/// its bits per weight.
static nlohmann::json describeLayers(ModuleOp module) {
  nlohmann::json layers = nlohmann::json::array();
  module.walk([&](mlir::qnt::MatmulOp op) {
    SmallVector<int64_t, 2> shape = op.getWeightShape();
    std::string encoding;
    llvm::raw_string_ostream os(encoding);
    op.getEncoding().print(os);
    std::string weight;
    if (!op.getComponents().empty())
      if (auto param =
              op.getComponents().front().getDefiningOp<mlir::qnt::ParamOp>())
        weight = param.getName().str();
    nlohmann::json layer = {
        {"function", op->getParentOfType<func::FuncOp>().getSymName().str()},
        {"weight", weight},
        {"shape", {shape[0], shape[1]}},
        {"encoding", encoding}};
    ::qnt::numerics::EncodingSpec spec = op.getEncoding().toSpec();
    layer["bits_per_weight"] =
        ::qnt::numerics::bitsPerWeight(spec, shape[0], shape[1]);
    layers.push_back(layer);
  });
  return layers;
}

/// The manifest's record of `path` (relative to `dir`).
static FailureOr<io::ArtifactFile> describeFile(StringRef dir, StringRef path,
                                                Location loc) {
  io::ArtifactFile file;
  file.path = path.str();
  llvm::SmallString<256> full(dir);
  llvm::sys::path::append(full, path);
  std::string error;
  if (!io::fileCrc32c(full.str().str(), file.crc32c, file.bytes, &error))
    return emitError(loc) << error;
  return file;
}

/// True if `dir` holds an artifact: a manifest whose format is ours (not
/// merely a file named manifest.json), so that only artifacts are replaced.
static bool isArtifactDirectory(StringRef dir) {
  llvm::SmallString<256> manifest(dir);
  llvm::sys::path::append(manifest, io::kManifestFileName);
  llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> text =
      llvm::MemoryBuffer::getFile(manifest, /*IsText=*/true);
  if (!text)
    return false;
  nlohmann::json j = nlohmann::json::parse((*text)->getBuffer().begin(),
                                           (*text)->getBuffer().end(), nullptr,
                                           /*allow_exceptions=*/false);
  auto format = j.is_object() ? j.find("format") : j.end();
  return j.is_object() && format != j.end() && format->is_string() &&
         format->get<std::string>() == io::kArtifactFormatName;
}

/// Checks that `target` is free or holds an artifact (which may be
/// replaced).
static LogicalResult checkReplaceable(StringRef target, Location loc) {
  if (llvm::sys::fs::exists(target) && !isArtifactDirectory(target))
    return emitError(loc) << target << " exists and is not an artifact; "
                          << "not replacing it";
  return success();
}

/// Moves the finished `staging` directory to `target`. An earlier artifact
/// there is renamed aside first and removed only once the new one is in
/// place, so that a failure leaves the old one.
static LogicalResult publish(StringRef staging, StringRef target,
                             Location loc) {
  if (failed(checkReplaceable(target, loc)))
    return failure();
  std::string aside;
  if (llvm::sys::fs::exists(target)) {
    aside = (target + llvm::formatv(".old-{0}", ::getpid()).str()).str();
    (void)llvm::sys::fs::remove_directories(aside);
    if (std::error_code ec = llvm::sys::fs::rename(target, aside))
      return emitError(loc) << "cannot move the earlier artifact " << target
                            << " aside: " << ec.message();
  }
  if (std::error_code ec = llvm::sys::fs::rename(staging, target)) {
    if (!aside.empty())
      (void)llvm::sys::fs::rename(aside, target);
    return emitError(loc) << "cannot rename " << staging << " to " << target
                          << ": " << ec.message();
  }
  if (!aside.empty())
    (void)llvm::sys::fs::remove_directories(aside);
  return success();
}

namespace qnt::package {
std::string normalizeOutputPath(StringRef path) {
  llvm::SmallString<256> normal(path);
  llvm::sys::path::remove_dots(normal, /*remove_dot_dot=*/false);
  while (normal.size() > 1 && llvm::sys::path::is_separator(normal.back()))
    normal.pop_back();
  return normal.str().str();
}
} // namespace qnt::package

/// Writes `bytes` to `path`, reporting a failure to open or to write.
static LogicalResult writeFile(StringRef path, StringRef bytes, Location loc) {
  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec, llvm::sys::fs::OF_None);
  if (ec)
    return emitError(loc) << "cannot write " << path << ": " << ec.message();
  os << bytes;
  os.close();
  if (os.has_error())
    return emitError(loc) << "cannot write " << path << ": "
                          << os.error().message();
  return success();
}

/// The gpu.binary's module handle, which the translation loads from a
/// global constructor with the embedded image of the first chip, becomes
/// the exported, initially null `qnt_cuda_module`: the runtime chooses the
/// cubin for the device (or the PTX), loads it and stores the handle there
/// before the first call. The constructor, the destructor and the embedded
/// image go.
static LogicalResult exposeCudaModule(llvm::Module &module,
                                      StringRef binaryName, Location loc) {
  llvm::GlobalVariable *handle =
      module.getGlobalVariable((binaryName + "_module").str(),
                               /*AllowInternal=*/true);
  if (!handle)
    return emitError(loc) << "the GPU host code has no module handle '"
                          << binaryName << "_module'";
  for (const char *name : {"llvm.global_ctors", "llvm.global_dtors"}) {
    llvm::GlobalVariable *list = module.getGlobalVariable(name);
    if (!list)
      continue;
    // Only the image's load and unload are expected there.
    if (auto *entries =
            dyn_cast_or_null<llvm::ConstantArray>(list->getInitializer()))
      for (llvm::Value *entry : entries->operands()) {
        auto *fields = cast<llvm::ConstantStruct>(entry);
        auto *function = dyn_cast<llvm::Function>(fields->getOperand(1));
        if (!function || !function->getName().starts_with(binaryName))
          return emitError(loc) << "the GPU host code has an unexpected "
                                << name << " entry";
      }
    list->eraseFromParent();
  }
  for (const char *suffix : {"_load", "_unload"})
    if (llvm::Function *f = module.getFunction((binaryName + suffix).str())) {
      // The erased lists leave constants that no longer refer to anything.
      f->removeDeadConstantUsers();
      if (!f->use_empty())
        return emitError(loc) << "the GPU host code uses '" << f->getName()
                              << "' outside its constructor list";
      f->eraseFromParent();
    }
  handle->setName("qnt_cuda_module");
  handle->setLinkage(llvm::GlobalValue::ExternalLinkage);
  handle->setVisibility(llvm::GlobalValue::DefaultVisibility);
  return success();
}

/// The number in "sm_90" or "sm_90a" (0 when there is none), to order
/// chips.
static int chipNumber(StringRef chip) {
  StringRef digits = chip.drop_front(3).take_while(llvm::isDigit);
  int number = 0;
  digits.getAsInteger(10, number);
  return number;
}

/// Runs ptxas on the PTX file `ptxPath` for `chip`, writing the cubin
/// `cubinPath`.
static LogicalResult assemble(StringRef ptxas, StringRef ptxPath,
                              StringRef chip, StringRef cubinPath,
                              Location loc) {
  std::string arch = ("-arch=" + chip).str();
  SmallVector<StringRef> args = {ptxas, arch, "-O3", "-o", cubinPath, ptxPath};
  std::string message;
  int status = llvm::sys::ExecuteAndWait(ptxas, args, std::nullopt, {}, 0, 0,
                                         &message);
  if (status != 0)
    return emitError(loc) << "ptxas failed for " << chip
                          << (message.empty() ? "" : ": " + message)
                          << " (exit status " << status << ")";
  return success();
}

/// Lowers `module` (consumed) through qnt-gpu-model-pipeline for `chips`
/// and writes cuda/host.so, cuda/<chip>.cubin for each chip and
/// cuda/<newest chip>.ptx into `staging`.
static FailureOr<io::CudaTarget>
emitCudaTarget(ModuleOp module, ArrayRef<std::string> entries,
               ArrayRef<std::string> chips, StringRef staging,
               std::vector<runtime::EntrySignature> &signatures) {
  Location loc = module.getLoc();
  std::string toolkit = mlir::qnt::getDefaultCudaToolkitPath().str();
  std::string ptxas = toolkit.empty() ? "" : toolkit + "/bin/ptxas";
  if (ptxas.empty() || !llvm::sys::fs::can_execute(ptxas))
    return emitError(loc)
           << "--target cuda needs ptxas from a CUDA toolkit, and none was "
              "found when quant-mlir was configured (set CUDA_HOME and "
              "configure again; scripts/setup.sh installs one)";
  FailureOr<std::vector<runtime::EntrySignature>> bound =
      runtime::bindEntries(module, entries);
  if (failed(bound))
    return failure();
  signatures = std::move(*bound);

  // PTX for every chip from LLVM; ptxas then assembles each below, so the
  // artifact holds exactly what the driver will load.
  mlir::qnt::GpuTargetOptions target;
  target.chips.assign(chips.begin(), chips.end());
  target.format = "isa";
  if (failed(mlir::qnt::runPassPipeline(
          module, mlir::qnt::getGpuModelPipeline(target))))
    return failure();
  SmallVector<gpu::BinaryOp> binaries(module.getOps<gpu::BinaryOp>());
  if (binaries.size() != 1)
    return emitError(loc) << "the GPU lowering made " << binaries.size()
                          << " kernel images, expected one";
  gpu::BinaryOp binary = binaries.front();

  io::CudaTarget cuda;
  llvm::SmallString<256> cudaDir(staging);
  llvm::sys::path::append(cudaDir, "cuda");
  if (std::error_code ec = llvm::sys::fs::create_directories(cudaDir))
    return emitError(loc) << "cannot create " << cudaDir << ": "
                          << ec.message();
  // Each chip's PTX is written as cuda/<chip>.ptx for ptxas; the newest
  // chip's stays in the artifact.
  std::string newestChip;
  for (Attribute attr : binary.getObjects()) {
    auto object = cast<gpu::ObjectAttr>(attr);
    auto nvvm = dyn_cast<NVVM::NVVMTargetAttr>(object.getTarget());
    if (!nvvm)
      return emitError(loc) << "a kernel image has a non-NVVM target";
    std::string chip = nvvm.getChip().str();
    StringRef ptx = object.getObject().getValue().rtrim('\0');
    int64_t kernels = ptx.count(".entry ");
    if (cuda.kernels != 0 && kernels != cuda.kernels)
      return emitError(loc) << "the images have different kernel counts";
    cuda.kernels = kernels;
    std::string relative = "cuda/" + chip + ".cubin";
    llvm::SmallString<256> cubinPath(staging), ptxPath(staging);
    llvm::sys::path::append(cubinPath, relative);
    llvm::sys::path::append(ptxPath, "cuda/" + chip + ".ptx");
    if (failed(writeFile(ptxPath, ptx, loc)) ||
        failed(assemble(ptxas, ptxPath, chip, cubinPath, loc)))
      return failure();
    FailureOr<io::ArtifactFile> file = describeFile(staging, relative, loc);
    if (failed(file))
      return failure();
    cuda.cubins.push_back({chip, *file});
    // The PTX kept for later chips is the newest chip's; an "a" chip
    // (sm_90a) has architecture-specific PTX that no later chip can JIT,
    // so a plain one is preferred.
    auto rank = [](StringRef c) {
      return std::make_pair(!c.ends_with("a"), chipNumber(c));
    };
    if (newestChip.empty() || rank(chip) > rank(newestChip))
      newestChip = chip;
  }
  for (const io::CudaCubin &cubin : cuda.cubins) {
    if (cubin.chip == newestChip)
      continue;
    llvm::SmallString<256> ptxPath(staging);
    llvm::sys::path::append(ptxPath, "cuda/" + cubin.chip + ".ptx");
    (void)llvm::sys::fs::remove(ptxPath);
  }
  cuda.ptxChip = newestChip;
  std::string ptxRelative = "cuda/" + newestChip + ".ptx";
  FailureOr<io::ArtifactFile> ptxFile = describeFile(staging, ptxRelative, loc);
  if (failed(ptxFile))
    return failure();
  cuda.ptx = *ptxFile;

  // The host program: x86-64 baseline, like the portable CPU image.
  ImageSpec host;
  host.name = "cuda-host";
  host.cpu = "x86-64";
  std::string hostRelative = "cuda/host.so";
  llvm::SmallString<256> hostPath(staging);
  llvm::sys::path::append(hostPath, hostRelative);
  std::string binaryName = binary.getSymName().str();
  if (failed(emitSharedObject(module, host, signatures, hostPath,
                              [&](llvm::Module &m) {
                                return exposeCudaModule(m, binaryName, loc);
                              })))
    return failure();
  FailureOr<io::ArtifactFile> hostFile =
      describeFile(staging, hostRelative, loc);
  if (failed(hostFile))
    return failure();
  cuda.host = *hostFile;
  cuda.hostTriple = llvm::sys::getProcessTriple();
  return cuda;
}

namespace qnt::package {
LogicalResult writeArtifact(ModuleOp module, const ArtifactOptions &options) {
  Location loc = module.getLoc();
  auto start = std::chrono::steady_clock::now();
  auto seconds = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                         start)
        .count();
  };
  FailureOr<io::LlamaConfig> config = mlir::qnt::readModelConfig(module);
  if (failed(config))
    return failure();
  FailureOr<mlir::qnt::ParamStore> store = mlir::qnt::ParamStore::open(module);
  if (failed(store))
    return failure();
  FailureOr<std::vector<std::string>> entries =
      runtime::prepareModelForCpu(module, *config);
  if (failed(entries))
    return failure();
  const std::string outputDir = normalizeOutputPath(options.outputDir);
  if (failed(checkReplaceable(outputDir, loc)))
    return failure();

  io::ArtifactManifest manifest;
  manifest.producer = std::string("quant-compile ") + toolVersion();
  manifest.model = *config;
  manifest.layers = describeLayers(module);
  manifest.recipe = options.recipe;

  llvm::SmallString<256> staging(outputDir);
  staging += llvm::formatv(".partial-{0}", ::getpid()).str();
  (void)llvm::sys::fs::remove_directories(staging);
  llvm::SmallString<256> cpuDir(staging);
  if (options.cpuImages)
    llvm::sys::path::append(cpuDir, "cpu");
  if (std::error_code ec = llvm::sys::fs::create_directories(cpuDir))
    return emitError(loc) << "cannot create " << cpuDir << ": "
                          << ec.message();
  bool published = false;
  llvm::scope_exit cleanup([&] {
    if (!published)
      (void)llvm::sys::fs::remove_directories(staging);
  });

  std::vector<runtime::EntrySignature> signatures;
  std::vector<ImageSpec> cpuSpecs;
  if (options.cpuImages)
    cpuSpecs = imageSpecs(options);
  for (const ImageSpec &spec : cpuSpecs) {
    OwningOpRef<ModuleOp> clone = module.clone();
    FailureOr<runtime::LoweredCpuModule> lowered =
        runtime::lowerForCpu(*clone, *entries, spec.options);
    if (failed(lowered))
      return failure();
    if (signatures.empty())
      signatures = lowered->signatures;
    // The manifest lists the entries once for every image.
    if (lowered->signatures != signatures)
      return emitError(loc) << "CPU image '" << spec.name
                            << "' has other entry signatures than the first";
    std::string relative = "cpu/" + spec.name + ".so";
    llvm::SmallString<256> soPath(staging);
    llvm::sys::path::append(soPath, relative);
    if (failed(emitSharedObject(*clone, spec, lowered->signatures, soPath)))
      return failure();
    io::CpuImage image;
    image.name = spec.name;
    FailureOr<io::ArtifactFile> file = describeFile(staging, relative, loc);
    if (failed(file))
      return failure();
    image.file = *file;
    image.triple = llvm::sys::getProcessTriple();
    image.cpu = spec.cpu;
    image.requiredFeatures = spec.requiredFeatures;
    image.openmp = lowered->usesOpenMP;
    image.activations = spec.options.int8Activations ? "int8" : "f32";
    image.threads = spec.options.threads;
    manifest.cpuImages.push_back(image);
    llvm::errs() << llvm::formatv(
        "quant-compile: CPU image '{0}' for {1}: {2:F1} KiB ({3:F1} s)\n",
        spec.name, spec.cpu, image.file.bytes / 1024.0, seconds());
  }
  if (!options.cudaChips.empty()) {
    OwningOpRef<ModuleOp> clone = module.clone();
    std::vector<runtime::EntrySignature> gpuSignatures;
    FailureOr<io::CudaTarget> cuda = emitCudaTarget(
        *clone, *entries, options.cudaChips, staging, gpuSignatures);
    if (failed(cuda))
      return failure();
    if (signatures.empty())
      signatures = gpuSignatures;
    if (gpuSignatures != signatures)
      return emitError(loc) << "the GPU code has other entry signatures than "
                               "the CPU images";
    manifest.cuda = std::move(*cuda);
    std::string chips;
    for (const io::CudaCubin &cubin : manifest.cuda->cubins)
      chips += (chips.empty() ? "" : ", ") + cubin.chip;
    llvm::errs() << llvm::formatv(
        "quant-compile: CUDA kernels for {0}: {1} kernels, PTX for {2}, host "
        "program {3:F1} KiB ({4:F1} s)\n",
        chips, manifest.cuda->kernels, manifest.cuda->ptxChip,
        manifest.cuda->host.bytes / 1024.0, seconds());
  }
  for (const runtime::EntrySignature &sig : signatures) {
    FailureOr<io::ArtifactEntry> entry = artifactEntry(sig, loc);
    if (failed(entry))
      return failure();
    manifest.entries.push_back(std::move(*entry));
  }

  llvm::SmallString<256> weightsPath(staging);
  llvm::sys::path::append(weightsPath, io::kArtifactWeightsFileName);
  if (failed(writeWeights(*store, signatures, staging, weightsPath, loc)))
    return failure();
  FailureOr<io::ArtifactFile> weights =
      describeFile(staging, io::kArtifactWeightsFileName, loc);
  if (failed(weights))
    return failure();
  manifest.weights = *weights;

  if (!options.tokenizerPath.empty()) {
    llvm::SmallString<256> tokenizer(staging);
    llvm::sys::path::append(tokenizer, io::kArtifactTokenizerFileName);
    if (std::error_code ec =
            llvm::sys::fs::copy_file(options.tokenizerPath, tokenizer))
      return emitError(loc) << "cannot copy the tokenizer "
                            << options.tokenizerPath << ": " << ec.message();
    FailureOr<io::ArtifactFile> file =
        describeFile(staging, io::kArtifactTokenizerFileName, loc);
    if (failed(file))
      return failure();
    manifest.tokenizer = *file;
  }

  llvm::SmallString<256> manifestPath(staging);
  llvm::sys::path::append(manifestPath, io::kManifestFileName);
  if (failed(writeFile(manifestPath, io::writeManifest(manifest), loc)))
    return failure();
  if (failed(publish(staging, outputDir, loc)))
    return failure();
  published = true;
  llvm::errs() << llvm::formatv(
      "quant-compile: wrote {0}: {1} entries, {2} CPU image(s), {3} CUDA "
      "image(s), weights {4:F2} MiB; {5:F1} s\n",
      outputDir, manifest.entries.size(), manifest.cpuImages.size(),
      manifest.cuda ? manifest.cuda->cubins.size() : 0,
      manifest.weights.bytes / 1048576.0, seconds());
  return success();
}
} // namespace qnt::package
