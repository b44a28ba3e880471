//===- Package.h - Compile a model into a deployable artifact ---*- C++ -*-===//
//
// The packager behind `quant-compile --target`: lowers an imported model
// with the CPU pipeline the JIT uses, compiles it ahead of time through
// LLVM's TargetMachine into one shared object per CPU feature level, and
// writes it with every parameter it reads, the tokenizer and a manifest
// into one relocatable directory (qnt/io/Artifact.h, docs/Artifact.md).
//
//===----------------------------------------------------------------------===//

#ifndef QNT_PACKAGE_PACKAGE_H
#define QNT_PACKAGE_PACKAGE_H

#include "qnt/runtime/CpuJit.h"

#include "mlir/IR/BuiltinOps.h"

#include <nlohmann/json.hpp>

#include <string>

namespace qnt::package {

struct ArtifactOptions {
  /// The artifact directory. An earlier artifact there is replaced; any
  /// other existing path is refused.
  std::string outputDir;
  /// How the kernels are compiled (threads, int8 activations, matmul
  /// options), for every image.
  runtime::CpuCompileOptions cpu;
  /// Besides the image for this machine's CPU ("native"), one for the
  /// baseline of its architecture ("portable": x86-64 with SSE2, generic
  /// int8 dot products) that runs on any CPU of the architecture.
  bool portableImage = true;
  /// Build the CPU images (--target cpu).
  bool cpuImages = true;
  /// NVIDIA chips to build kernels for (--target cuda:sm_80,sm_90): the
  /// whole model through qnt-gpu-model-pipeline, a cubin per chip (ptxas),
  /// PTX of the newest chip and an x86-64 host program. Empty for none.
  std::vector<std::string> cudaChips;
  /// A llama2.c tokenizer.bin to include ("" for none).
  std::string tokenizerPath;
  /// Recorded in the manifest: the producing tool and its version, and
  /// what made the model (recipe, calibration), kept as given.
  std::string producer;
  nlohmann::json recipe = nlohmann::json::object();
};

/// Packages `module` (an imported model, float or quantized; it is consumed:
/// lowered in place). Progress and a summary go to stderr; errors are
/// reported on the module's context. On failure nothing is left at
/// options.outputDir.
mlir::LogicalResult writeArtifact(mlir::ModuleOp module,
                                  const ArtifactOptions &options);

/// `path` without "." components and trailing separators ("m.qnt/" ->
/// "m.qnt"), so that the names derived from it (the staging directory)
/// stay beside it rather than inside.
std::string normalizeOutputPath(llvm::StringRef path);

/// This build's version, as recorded in manifests ("0.1.0+git.abc1234").
const char *toolVersion();

} // namespace qnt::package

#endif // QNT_PACKAGE_PACKAGE_H
