//===- GpuPipeline.cpp - qnt-gpu-pipeline -----------------------*- C++ -*-===//
//
// The NVIDIA GPU pipeline, spelled as textual pipelines (like
// qnt-cpu-pipeline) so that `quant-opt --qnt-gpu-pipeline` and the runtime
// run the same passes. Kernels go NVVM -> PTX (LLVM NVPTX) -> cubin
// (ptxas from the CUDA toolkit), one image per chip.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "llvm/ADT/StringExtras.h"

using namespace mlir;

#ifndef QNT_CUDA_TOOLKIT_DIR
#define QNT_CUDA_TOOLKIT_DIR ""
#endif

llvm::StringRef mlir::qnt::getDefaultCudaToolkitPath() {
  return QNT_CUDA_TOOLKIT_DIR;
}

std::string mlir::qnt::getGpuDevicePipeline(const GpuTargetOptions &target) {
  std::string pipeline;
  llvm::raw_string_ostream os(pipeline);
  // nvvm-attach-target appends a target per run: one image per chip.
  for (const std::string &chip : target.chips)
    os << "nvvm-attach-target{chip=" << chip << " features=" << target.features
       << " O=" << target.optLevel << "},";
  std::string toolkit = target.toolkit.empty()
                            ? getDefaultCudaToolkitPath().str()
                            : target.toolkit;
  // Kernels use scf, and those made from linalg loops affine maps and
  // subviews; convert-gpu-to-nvvm lowers none of them.
  os << "gpu.module(expand-strided-metadata,lower-affine,convert-scf-to-cf,"
        "convert-gpu-to-nvvm,canonicalize,cse,"
        "reconcile-unrealized-casts),"
     << "gpu-module-to-binary{format=" << target.format;
  if (!toolkit.empty())
    os << " toolkit=" << toolkit;
  os << "}";
  return pipeline;
}

/// The host half shared by both GPU pipelines: LLVM lowering of the host
/// code, with gpu-to-llvm turning launches and device buffers into mgpu*
/// runtime calls.
static constexpr llvm::StringLiteral kGpuHostLowering =
    "convert-scf-to-cf,"
    "expand-strided-metadata,"
    "lower-affine,"
    "finalize-memref-to-llvm,"
    "convert-math-to-llvm,"
    "convert-arith-to-llvm,"
    "convert-func-to-llvm,"
    "convert-cf-to-llvm,"
    "convert-index-to-llvm,"
    "gpu-to-llvm,"
    "convert-ub-to-llvm,"
    "reconcile-unrealized-casts";

std::string mlir::qnt::getGpuModelPipeline(const GpuTargetOptions &target,
                                           llvm::StringRef matmulOptions,
                                           int64_t blockSize) {
  std::string pipeline = "qnt-lower-matmul-gpu";
  if (!matmulOptions.trim().empty())
    pipeline += "{" + matmulOptions.trim().str() + "}";
  // Everything else becomes linalg on buffers, then one scf.parallel nest
  // per op with its reductions inside (qnt-gpu-prepare-loops), mapped to
  // blocks and threads and turned into outlined kernels; the host code
  // keeps shapes, launches and stream-ordered device buffers
  // (docs/GpuCodegen.md, "Whole-model execution"). Results become
  // out-parameters, as on the CPU, so that both kinds of artifact code have
  // one calling convention (the copies into them become kernels). exp is
  // approximated as on the CPU, so that both targets compute the same
  // softmax.
  pipeline += ",func.func(qnt-lower-to-linalg,qnt-approximate-math),"
              "canonicalize,"
              "one-shot-bufferize{bufferize-function-boundaries "
              "function-boundary-type-conversion=identity-layout-map},"
              "buffer-results-to-out-params{modify-public-functions},"
              "convert-bufferization-to-memref,"
              "func.func(qnt-gpu-prepare-loops,"
              "convert-linalg-to-parallel-loops,"
              "qnt-gpu-map-loops{block-size=" +
              std::to_string(blockSize) +
              "},convert-parallel-loops-to-gpu),"
              "gpu-kernel-outlining,qnt-gpu-merge-kernel-modules,"
              "qnt-gpu-device-memory,"
              "canonicalize,cse,";
  pipeline += getGpuDevicePipeline(target) + ",";
  pipeline += kGpuHostLowering;
  return pipeline;
}

std::string mlir::qnt::getGpuPipeline(const GpuTargetOptions &target,
                                      llvm::StringRef matmulOptions) {
  std::string pipeline = "qnt-lower-matmul-gpu";
  if (!matmulOptions.trim().empty())
    pipeline += "{" + matmulOptions.trim().str() + "}";
  // The host half is the CPU pipeline's bufferization and LLVM lowering
  // (remaining qnt ops get their reference lowering and run on the host),
  // with gpu-to-llvm turning launches into mgpu* runtime calls. Results are
  // returned as memrefs the caller owns. buffer-deallocation-pipeline is
  // left out: it rejects gpu.launch_func, whose memory effects are unknown
  // (docs/GpuCodegen.md, "Host code").
  pipeline += ",func.func(qnt-lower-to-linalg),"
              "canonicalize,"
              "one-shot-bufferize{bufferize-function-boundaries "
              "function-boundary-type-conversion=identity-layout-map},"
              "convert-bufferization-to-memref,"
              "func.func(convert-linalg-to-loops),";
  pipeline += getGpuDevicePipeline(target) + ",";
  pipeline += kGpuHostLowering;
  return pipeline;
}

namespace {

/// Options of `qnt-gpu-pipeline` (quant-opt --qnt-gpu-pipeline="...").
struct GpuPipelineOptions : PassPipelineOptions<GpuPipelineOptions> {
  ListOption<std::string> chips{*this, "chips",
                                llvm::cl::desc("Target chips (one binary "
                                               "image each), e.g. "
                                               "sm_80,sm_90")};
  Option<std::string> features{*this, "features",
                               llvm::cl::desc("PTX features"),
                               llvm::cl::init("+ptx80")};
  Option<std::string> format{
      *this, "format",
      llvm::cl::desc("Kernel image format: bin (cubin), isa (PTX), fatbin "
                     "or llvm"),
      llvm::cl::init("bin")};
  Option<std::string> toolkit{
      *this, "toolkit",
      llvm::cl::desc("CUDA toolkit root holding bin/ptxas (default: the "
                     "one found at configure time)")};
  Option<std::string> matmul{
      *this, "matmul",
      llvm::cl::desc("Options of qnt-lower-matmul-gpu, e.g. "
                     "'gemv-warps=8 gemm-tile-k=64'")};
};

/// Options of `qnt-gpu-model-pipeline`: the target options and the
/// threads per block of the generated elementwise/reduction kernels.
struct GpuModelPipelineOptions : GpuPipelineOptions {
  Option<int64_t> blockSize{
      *this, "block-size",
      llvm::cl::desc("Threads per block of the kernels made from linalg "
                     "ops (qnt-gpu-map-loops)"),
      llvm::cl::init(256)};
};

mlir::qnt::GpuTargetOptions targetFromOptions(const GpuPipelineOptions &options) {
  mlir::qnt::GpuTargetOptions target;
  if (!options.chips.empty())
    target.chips.assign(options.chips.begin(), options.chips.end());
  target.features = options.features;
  target.format = options.format;
  target.toolkit = options.toolkit;
  return target;
}

} // namespace

void mlir::qnt::registerGpuPipeline() {
  PassPipelineRegistration<GpuPipelineOptions>(
      "qnt-gpu-pipeline",
      "Lowers tensors with qnt ops to LLVM host code launching fused "
      "dequantize GPU kernels, serialized per chip with ptxas",
      [](OpPassManager &pm, const GpuPipelineOptions &options) {
        std::string pipeline =
            getGpuPipeline(targetFromOptions(options), options.matmul);
        if (failed(parsePassPipeline(pipeline, pm)))
          llvm::errs() << "qnt-gpu-pipeline: cannot build '" << pipeline
                       << "'\n";
      });
  PassPipelineRegistration<GpuModelPipelineOptions>(
      "qnt-gpu-model-pipeline",
      "Lowers whole model functions to GPU kernels: fused dequantize "
      "matmuls plus kernels generated from every other linalg op, with "
      "device buffers and asynchronous launches on one stream",
      [](OpPassManager &pm, const GpuModelPipelineOptions &options) {
        std::string pipeline = getGpuModelPipeline(
            targetFromOptions(options), options.matmul, options.blockSize);
        if (failed(parsePassPipeline(pipeline, pm)))
          llvm::errs() << "qnt-gpu-model-pipeline: cannot build '" << pipeline
                       << "'\n";
      });
}
