//===- GpuMatmulKernels.h - Fused dequant-matmul GPU kernels ----*- C++ -*-===//
//
// Builders of the GPU kernels behind qnt.matmul: `out = x * dequant(W)^T`
// with x [M, K], W [N, K] stored in an encoding's components, out [M, N].
// The kernels are written once, in gpu/arith/memref/scf and NVVM's mma op;
// the only per-encoding code they contain is what the encoding's
// emitDequantElement hook emits, reading components with memref.load. So
// every encoding, present and future, gets both kernels.
//
// Two strategies (docs/GpuCodegen.md):
//  - GEMV (decode, M <= gemvMaxRows): one warp per output column n, lanes
//    stream the packed row of W in contiguous runs of `elementsPerLane`
//    inputs, dequantize in registers, keep R activation rows in flight and
//    reduce with warp shuffles. Variants for R = 1, 2, 4, ... so that a
//    decode step does no wasted FMAs.
//  - GEMM (prefill): a block computes a tileM x tileN output tile; each
//    k-step stages the activation tile and the *dequantized* weight tile in
//    shared memory and multiplies them with tensor cores (mma.sync
//    m16n8k16, f16 or bf16 activations), or with FMAs for f32 activations
//    (an f32 program's numerics do not allow rounding to f16 silently).
//
// Kernel ABI: `(x: memref<?xKxTin>, components..., out: memref<?xNxTout>)`
// in MLIR's default memref calling convention (each memref is allocated
// pointer, aligned pointer, offset, sizes, strides); M is read from x.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_PASSES_LOWERING_GPUMATMULKERNELS_H
#define QNT_PASSES_LOWERING_GPUMATMULKERNELS_H

#include "dialects/qnt/QntDialect.h"

#include <array>
#include <string>

namespace mlir {
namespace gpu {
class GPUModuleOp;
class GPUFuncOp;
} // namespace gpu

namespace qnt {

/// Which kernel serves a qnt.matmul: by M (auto), or always one kind.
enum class GpuMatmulStrategy { Auto, Gemv, Gemm };

/// Tuning knobs of the GPU matmul kernels (the options of
/// qnt-lower-matmul-gpu; defaults suit sm_80 and sm_90).
struct GpuMatmulOptions {
  GpuMatmulStrategy strategy = GpuMatmulStrategy::Auto;
  /// Largest M served by the GEMV kernels; larger M uses the GEMM kernel.
  int64_t gemvMaxRows = 16;
  /// Warps (output columns) per GEMV block.
  int64_t gemvWarpsPerBlock = 4;
  /// Consecutive inputs each lane dequantizes per step (a multiple of 8
  /// keeps every sub-byte code run byte aligned).
  int64_t gemvElementsPerLane = 8;
  /// GEMM block tile. tileM and tileN are multiples of 32 (2x2 warps of
  /// 16x8 mma tiles), tileK a multiple of 16.
  int64_t gemmTileM = 64;
  int64_t gemmTileN = 64;
  int64_t gemmTileK = 32;

  /// Checks the values; returns an empty string or a message.
  std::string verify() const;
};

enum class GpuMatmulKind { Gemv, Gemm };

/// What one kernel computes and how to launch it.
struct GpuMatmulKernelSpec {
  GpuMatmulKind kind = GpuMatmulKind::Gemv;
  /// GEMV: activation rows each block keeps in flight (R).
  int64_t gemvRows = 1;
  int64_t n = 0, k = 0;
  Type inputElementType, outputElementType;
  /// Null for a dense f16 weight [N, K]: the same kernels without
  /// dequantization, the baseline quant-bench compares against.
  EncodingAttrInterface encoding;
  GpuMatmulOptions options;

  /// Threads per block (x, y, z).
  std::array<int64_t, 3> blockSize() const;
  /// Blocks for `m` activation rows.
  std::array<int64_t, 3> gridSize(int64_t m) const;
  /// Static shared memory bytes the kernel declares.
  int64_t sharedMemoryBytes() const;
  /// True when the GEMM multiplies with tensor cores.
  bool usesTensorCores() const;
};

/// The kernels a qnt.matmul of `m` rows (dynamic: every variant) needs,
/// GEMV variants first (R = 1, 2, 4, ... up to gemvMaxRows; for a static M
/// only the smallest that holds it), then the GEMM, as the strategy allows.
SmallVector<GpuMatmulKernelSpec>
selectGpuMatmulKernels(EncodingAttrInterface encoding, int64_t m, int64_t n,
                       int64_t k, Type inputElementType,
                       Type outputElementType, const GpuMatmulOptions &options);

/// The kernel of `specs` that serves `m` rows.
const GpuMatmulKernelSpec &
pickGpuMatmulKernel(ArrayRef<GpuMatmulKernelSpec> specs, int64_t m);

/// The weight's storage: the encoding's components, or one dense f16
/// [N, K] tensor for a null encoding.
SmallVector<RankedTensorType>
gpuMatmulComponentTypes(MLIRContext *context, EncodingAttrInterface encoding,
                        int64_t n, int64_t k);

/// Memref types of the kernel arguments: x, the components, out.
SmallVector<Type> gpuMatmulArgumentTypes(const GpuMatmulKernelSpec &spec);

/// Adds kernel `name` for `spec` to `module`.
gpu::GPUFuncOp buildGpuMatmulKernel(OpBuilder &builder,
                                    gpu::GPUModuleOp module, StringRef name,
                                    const GpuMatmulKernelSpec &spec);

} // namespace qnt
} // namespace mlir

#endif // QNT_PASSES_LOWERING_GPUMATMULKERNELS_H
