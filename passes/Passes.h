//===- Passes.h - qnt passes ------------------------------------*- C++ -*-===//
//
// Declarations and registration of every quant-mlir pass and pipeline.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_PASSES_PASSES_H
#define QNT_PASSES_PASSES_H

#include "dialects/qnt/QntDialect.h"
#include "qnt/numerics/LowRank.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassManager.h"

namespace mlir {
namespace bufferization {
class BufferizationDialect;
} // namespace bufferization
namespace gpu {
class GPUDialect;
} // namespace gpu
namespace LLVM {
class LLVMDialect;
} // namespace LLVM
namespace memref {
class MemRefDialect;
} // namespace memref
namespace NVVM {
class NVVMDialect;
} // namespace NVVM
namespace vector {
class VectorDialect;
} // namespace vector
namespace linalg {
class LinalgDialect;
} // namespace linalg
namespace math {
class MathDialect;
} // namespace math
namespace scf {
class SCFDialect;
} // namespace scf
} // namespace mlir

namespace mlir::qnt {

/// qnt-awq's `unfoldable-scales`: what to do with a group whose input no
/// producer can absorb a scale into.
enum class UnfoldableScales {
  Skip, ///< no scale (clipping only), as the reference for GQA's o_proj
  Keep, ///< search one and keep the qnt.smooth at run time
};

/// qnt-aqlm's `share-codebooks`: which layers store one set of codebooks.
enum class CodebookSharing {
  None,  ///< each layer its own
  Block, ///< the layers of one decoder block (layers.<n>.*)
  Kind,  ///< the layers of one kind across blocks (every attention.wq)
  Model, ///< every quantized layer
};

/// qnt-mixed-precision's `noise-model`.
enum class NoiseModel {
  Trace,    ///< Delta^2 / 12 times the Hessian trace of each scale group
  Measured, ///< tr(D H D^T) of round-to-nearest
};

/// qnt-lower-matmul-cpu's `strategy`.
enum class CpuMatmulStrategy {
  Vector, ///< vector kernels over runs of K (emitDequantVector)
  Loops,  ///< one scalar loop nest (emitDequantElement)
};

/// qnt-lower-matmul-cpu's `activations`.
enum class CpuActivations {
  F32,  ///< f32 activations times dequantized weights
  Int8, ///< int8 activations times integer codes (getIntegerForm)
};

/// qnt-lower-matmul-cpu's `int8-dot`.
enum class CpuInt8Dot {
  Auto,    ///< vbmi or vnni, the most the host CPU has, else generic
  Vbmi,    ///< vnni, and AVX512-VBMI byte permutes and shifts
  Vnni,    ///< x86 vpdpbusd and vpshufb intrinsics
  Generic, ///< portable widening multiplies and reductions
};

#define GEN_PASS_DECL
#include "passes/Passes.h.inc"

/// The CPU lowering pipeline `qnt-cpu-pipeline` as a textual pipeline: from
/// tensors with qnt ops to the LLVM dialect, with qnt.matmul lowered to
/// vector kernels that dequantize in registers (docs/Pipelines.md).
/// `threads` is qnt-lower-matmul-cpu's: 1 keeps every kernel on the calling
/// thread; otherwise the large ones run on that many OpenMP threads (0: the
/// OpenMP default, every core).
/// With `int8Activations`, the quantized matmuls whose encodings have an
/// integer form quantize their activations to int8 (qnt-lower-matmul-cpu
/// activations=int8). `matmulOptions` are more qnt-lower-matmul-cpu options
/// ("col-tile=2 unroll=1"), for tuning.
/// With `gpuLoopMapping`, linalg ops become the loop nests the whole-model
/// GPU pipeline maps to blocks and threads (qnt-gpu-prepare-loops,
/// qnt-gpu-map-loops), run sequentially: the mapping is checked on a CPU.
std::string getCpuPipeline(int64_t threads = 0, bool int8Activations = false,
                           llvm::StringRef matmulOptions = "",
                           bool gpuLoopMapping = false);

/// Adds `qnt-cpu-pipeline` with these options to `pm` (on a module).
LogicalResult buildCpuPipeline(OpPassManager &pm, int64_t threads = 0,
                               bool int8Activations = false,
                               llvm::StringRef matmulOptions = "",
                               bool gpuLoopMapping = false);

/// Where code for NVIDIA GPUs goes and how it is packaged.
struct GpuTargetOptions {
  /// One binary image per chip ("sm_80", "sm_90", ...).
  std::vector<std::string> chips = {"sm_80"};
  /// PTX ISA features; LLVM's default PTX 6.0 cannot target sm_80+.
  std::string features = "+ptx80";
  /// gpu-module-to-binary format: bin (cubin via ptxas), isa (PTX text),
  /// fatbin, or llvm.
  std::string format = "bin";
  /// CUDA toolkit root holding bin/ptxas; empty uses the toolkit found
  /// when quant-mlir was configured (getDefaultCudaToolkitPath()).
  std::string toolkit;
  int optLevel = 3;
};

/// The CUDA toolkit found at configure time ("" if none was found).
llvm::StringRef getDefaultCudaToolkitPath();

/// The device half of the GPU pipeline as a textual pipeline: attach one
/// NVVM target per chip, lower every gpu.module to NVVM and serialize it
/// with gpu-module-to-binary (LLVM NVPTX, then ptxas for cubins).
std::string getGpuDevicePipeline(const GpuTargetOptions &target);

/// The whole GPU pipeline `qnt-gpu-pipeline` as a textual pipeline: from
/// tensors with qnt ops to LLVM host code launching cubins.
/// `matmulOptions` are qnt-lower-matmul-gpu's options ("gemv-warps=8").
std::string getGpuPipeline(const GpuTargetOptions &target,
                           llvm::StringRef matmulOptions = "");

/// The whole-model GPU pipeline `qnt-gpu-model-pipeline`: qnt.matmul as
/// the fused kernels of qnt-gpu-pipeline, every other op as kernels
/// generated from its linalg form (`blockSize` threads per block), device
/// buffers and asynchronous launches on one stream in the host code.
std::string getGpuModelPipeline(const GpuTargetOptions &target,
                                llvm::StringRef matmulOptions = "",
                                int64_t blockSize = 256);

/// Runs a textual pipeline on `module`: either anchored
/// ("builtin.module(qnt-rtn{...},func.func(...))", as mlir-opt's
/// --pass-pipeline) or a bare list of module-level elements
/// ("qnt-rtn{...},func.func(...)"). Parse errors are reported on the
/// module.
LogicalResult runPassPipeline(ModuleOp module, StringRef pipeline);

/// Lowers the qnt compute ops under `root` for which `select` is true
/// (qnt.dequant, qnt.matmul, qnt.smooth, qnt.lowrank_add, qnt.fake_quant)
/// to their reference linalg semantics, as qnt-lower-to-linalg does for all
/// of them.
LogicalResult lowerQntOpsToLinalg(Operation *root,
                                  function_ref<bool(Operation *)> select);

/// Registers `qnt-gpu-pipeline` (called by registerQntPasses).
void registerGpuPipeline();

/// Registers every qnt pass and the qnt pipelines.
void registerQntPasses();

#define GEN_PASS_REGISTRATION
#include "passes/Passes.h.inc"

} // namespace mlir::qnt

#endif // QNT_PASSES_PASSES_H
