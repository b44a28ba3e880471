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

#include "mlir/Dialect/Func/IR/FuncOps.h"
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
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/Target/TargetOptions.h"
#include "llvm/TargetParser/Host.h"

#include <chrono>
#include <set>
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
  std::string features; ///< "+avx2,+fma,-avx512f" or "" for the CPU's own
  std::vector<std::string> requiredFeatures;
  runtime::CpuCompileOptions options;
};

} // namespace

/// The images to build: this machine's CPU, and its architecture's baseline.
static std::vector<ImageSpec>
imageSpecs(const ::qnt::package::ArtifactOptions &o) {
  std::vector<ImageSpec> specs;
  ImageSpec native;
  native.name = "native";
  native.cpu = llvm::sys::getHostCPUName().str();
  llvm::StringMap<bool> host = llvm::sys::getHostCPUFeatures();
  std::vector<std::string> enabled;
  for (const auto &feature : host)
    if (feature.getValue())
      enabled.push_back(feature.getKey().str());
  llvm::sort(enabled);
  for (const std::string &feature : enabled) {
    native.features += (native.features.empty() ? "+" : ",+") + feature;
    if (io::isCheckedCpuFeature(feature))
      native.requiredFeatures.push_back(feature);
  }
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
static LogicalResult emitSharedObject(ModuleOp module, const ImageSpec &spec,
                                      ArrayRef<runtime::EntrySignature> sigs,
                                      StringRef soPath) {
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
  auto removeObject =
      llvm::make_scope_exit([&] { llvm::sys::fs::remove(objectPath); });
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
  std::set<std::string> written;
  for (const runtime::EntrySignature &sig : sigs)
    for (const auto &[name, type] : sig.params) {
      if (!written.insert(name).second)
        continue;
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

/// Moves the finished `staging` directory to `target`, replacing an
/// earlier artifact there but nothing else.
static LogicalResult publish(StringRef staging, StringRef target,
                             Location loc) {
  if (llvm::sys::fs::exists(target)) {
    llvm::SmallString<256> manifest(target);
    llvm::sys::path::append(manifest, io::kManifestFileName);
    if (!llvm::sys::fs::exists(manifest))
      return emitError(loc) << target << " exists and is not an artifact; "
                            << "not replacing it";
    if (std::error_code ec = llvm::sys::fs::remove_directories(target))
      return emitError(loc) << target << ": " << ec.message();
  }
  if (std::error_code ec = llvm::sys::fs::rename(staging, target))
    return emitError(loc) << "cannot rename " << staging << " to " << target
                          << ": " << ec.message();
  return success();
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
  if (llvm::sys::fs::exists(options.outputDir)) {
    llvm::SmallString<256> manifest(options.outputDir);
    llvm::sys::path::append(manifest, io::kManifestFileName);
    if (!llvm::sys::fs::exists(manifest))
      return emitError(loc) << options.outputDir
                            << " exists and is not an artifact; not "
                               "replacing it";
  }

  io::ArtifactManifest manifest;
  manifest.producer = std::string("quant-compile ") + toolVersion();
  manifest.model = *config;
  manifest.layers = describeLayers(module);
  manifest.recipe = options.recipe;

  llvm::SmallString<256> staging(options.outputDir);
  staging += llvm::formatv(".partial-{0}", ::getpid()).str();
  (void)llvm::sys::fs::remove_directories(staging);
  llvm::SmallString<256> cpuDir(staging);
  llvm::sys::path::append(cpuDir, "cpu");
  if (std::error_code ec = llvm::sys::fs::create_directories(cpuDir))
    return emitError(loc) << "cannot create " << cpuDir << ": "
                          << ec.message();
  bool published = false;
  auto cleanup = llvm::make_scope_exit([&] {
    if (!published)
      (void)llvm::sys::fs::remove_directories(staging);
  });

  std::vector<runtime::EntrySignature> signatures;
  for (const ImageSpec &spec : imageSpecs(options)) {
    OwningOpRef<ModuleOp> clone = module.clone();
    FailureOr<runtime::LoweredCpuModule> lowered =
        runtime::lowerForCpu(*clone, *entries, spec.options);
    if (failed(lowered))
      return failure();
    if (signatures.empty())
      signatures = lowered->signatures;
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
  {
    std::error_code ec;
    llvm::raw_fd_ostream os(manifestPath, ec);
    if (ec)
      return emitError(loc) << "cannot write " << manifestPath << ": "
                            << ec.message();
    os << io::writeManifest(manifest);
    os.close();
    if (os.has_error())
      return emitError(loc) << "cannot write " << manifestPath << ": "
                            << os.error().message();
  }
  if (failed(publish(staging, options.outputDir, loc)))
    return failure();
  published = true;
  llvm::errs() << llvm::formatv(
      "quant-compile: wrote {0}: {1} entries, {2} CPU image(s), weights "
      "{3:F2} MiB; {4:F1} s\n",
      options.outputDir, manifest.entries.size(), manifest.cpuImages.size(),
      manifest.weights.bytes / 1048576.0, seconds());
  return success();
}
} // namespace qnt::package
