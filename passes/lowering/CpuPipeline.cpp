//===- CpuPipeline.cpp - qnt-cpu-pipeline and pass registration -*- C++ -*-===//
//
// The CPU lowering pipeline, spelled as a textual pipeline so that
// `quant-opt --qnt-cpu-pipeline` and `--pass-pipeline=` with the same
// string are the same thing (docs/Pipelines.md).
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"

using namespace mlir;

namespace {
struct CpuPipelineOptions : PassPipelineOptions<CpuPipelineOptions> {
  Option<int64_t> threads{
      *this, "threads",
      llvm::cl::desc("Threads of the large matmul kernels (1: the calling "
                     "thread only; 0: every core)"),
      llvm::cl::init(0)};
  Option<bool> int8Activations{
      *this, "int8-activations",
      llvm::cl::desc("Quantize the activations of the quantized matmuls to "
                     "int8 (qnt-lower-matmul-cpu activations=int8)"),
      llvm::cl::init(false)};
  Option<bool> gpuLoopMapping{
      *this, "gpu-loop-mapping",
      llvm::cl::desc("Lower linalg ops to the loop nests that "
                     "qnt-gpu-model-pipeline maps to blocks and threads, "
                     "run sequentially (checks the mapping on a CPU)"),
      llvm::cl::init(false)};
};
} // namespace

std::string mlir::qnt::getCpuPipeline(int64_t threads, bool int8Activations,
                                      llvm::StringRef matmulOptions,
                                      bool gpuLoopMapping) {
  // qnt.matmul (and the dense transpose-B matmuls) first become vector
  // kernels; the remaining qnt compute ops get their reference lowering;
  // exp becomes a polynomial that LLVM vectorizes (a libm call would keep
  // the softmax loops of attention scalar);
  // then the upstream bufferization and LLVM conversions (TOOLCHAIN.md "CPU
  // with upstream passes"). Public functions return results through
  // caller-owned out-parameters so that a runtime can call them through the
  // C interface.
  // Kernels split over threads are scf.forall loops; after bufferization
  // they become OpenMP parallel loops (the LLVM OpenMP runtime runs them).
  // convert-scf-to-openmp wraps each body in a memref.alloca_scope, which
  // must hold a single block: canonicalize inlines the scopes (the kernels
  // allocate nothing) before scf becomes control flow.
  std::string parallelLoops =
      threads == 1 ? ""
                   : "scf-forall-to-parallel,convert-scf-to-openmp{num-threads=" +
                         std::to_string(threads) + "},canonicalize,";
  std::string activations = int8Activations ? " activations=int8" : "";
  if (!matmulOptions.empty())
    activations += " " + matmulOptions.str();
  return "func.func(qnt-lower-matmul-cpu{threads=" + std::to_string(threads) +
         activations + "},qnt-lower-to-linalg,qnt-approximate-math),"
         "canonicalize,"
         "one-shot-bufferize{bufferize-function-boundaries "
         "function-boundary-type-conversion=identity-layout-map},"
         "buffer-results-to-out-params{modify-public-functions},"
         "buffer-deallocation-pipeline,"
         "convert-bufferization-to-memref,"
         "qnt-lower-intrinsics," +
         std::string(gpuLoopMapping ? "func.func(qnt-gpu-prepare-loops,"
                           "convert-linalg-to-parallel-loops,"
                           "qnt-gpu-map-loops),"
                         : "func.func(convert-linalg-to-loops),") +
         parallelLoops +
         "convert-scf-to-cf,"
         "expand-strided-metadata,"
         "lower-affine,"
         "convert-vector-to-llvm,"
         "finalize-memref-to-llvm{use-aligned-alloc},"
         "convert-math-to-llvm,"
         "convert-arith-to-llvm,"
         "convert-func-to-llvm,"
         "convert-cf-to-llvm,"
         "convert-index-to-llvm,"
         "convert-ub-to-llvm," +
         (threads == 1 ? "" : "convert-openmp-to-llvm,") +
         "reconcile-unrealized-casts";
}

LogicalResult mlir::qnt::buildCpuPipeline(OpPassManager &pm, int64_t threads,
                                          bool int8Activations,
                                          llvm::StringRef matmulOptions,
                                          bool gpuLoopMapping) {
  return parsePassPipeline(getCpuPipeline(threads, int8Activations,
                                          matmulOptions, gpuLoopMapping),
                           pm);
}

LogicalResult mlir::qnt::runPassPipeline(ModuleOp module, StringRef pipeline) {
  PassManager pm(module.getContext());
  std::string error;
  llvm::raw_string_ostream os(error);
  StringRef trimmed = pipeline.trim();
  LogicalResult parsed = failure();
  if (trimmed.starts_with("builtin.module(")) {
    FailureOr<OpPassManager> anchored = parsePassPipeline(trimmed, os);
    if (succeeded(anchored)) {
      static_cast<OpPassManager &>(pm) = std::move(*anchored);
      parsed = success();
    }
  } else {
    parsed = parsePassPipeline(trimmed, pm, os);
  }
  if (failed(parsed))
    return module.emitError() << "cannot parse pass pipeline '" << pipeline
                              << "': " << error;
  return pm.run(module);
}

void mlir::qnt::registerQntPasses() {
  registerQntAllPasses();
  registerGpuPipeline();
  PassPipelineRegistration<CpuPipelineOptions>(
      "qnt-cpu-pipeline",
      "Lowers tensors with qnt ops to the LLVM dialect for the CPU, "
      "dequantizing inside the matmul kernels",
      [](OpPassManager &pm, const CpuPipelineOptions &options) {
        if (failed(buildCpuPipeline(pm, options.threads,
                                    options.int8Activations, "",
                                    options.gpuLoopMapping)))
          llvm::report_fatal_error("qnt-cpu-pipeline does not parse");
      });
}
