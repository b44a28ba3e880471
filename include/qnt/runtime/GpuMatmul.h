//===- GpuMatmul.h - Compile and launch fused GPU matmuls -------*- C++ -*-===//
//
// The runtime side of the GPU kernels of qnt-lower-matmul-gpu without host
// code: a GpuMatmulProgram is the cubin of every kernel one problem
// (encoding, N, K, activation and result types) needs, built with the device
// half of qnt-gpu-pipeline; a GpuMatmul is that program loaded on the device
// and launched on device buffers with the kernel that serves M. quant-bench
// and the GPU tests use it; MLIR host code gets the same kernels through
// gpu.launch_func and the mgpu* entry points.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_RUNTIME_GPUMATMUL_H
#define QNT_RUNTIME_GPUMATMUL_H

#include "qnt/runtime/CudaDriver.h"

#include "passes/lowering/GpuMatmulKernels.h"

#include "mlir/IR/Location.h"

#include <string>
#include <vector>

namespace qnt::runtime {

/// What to compile: `out[M, N] = x[M, K] * dequant(W[N, K])^T`.
struct GpuMatmulProblem {
  /// Null: a dense f16 weight (the baseline).
  mlir::qnt::EncodingAttrInterface encoding;
  int64_t n = 0, k = 0;
  mlir::Type inputType, outputType;
  mlir::qnt::GpuMatmulOptions options;
  /// Rows the kernels must serve; dynamic (the default) builds every
  /// variant.
  int64_t m = mlir::ShapedType::kDynamic;
};

/// The kernels of one problem, serialized for one chip.
class GpuMatmulProgram {
public:
  /// Builds the kernels and runs the device pipeline for `chip` ("sm_90").
  /// `format` is gpu-module-to-binary's (bin: a cubin; isa: PTX text).
  /// Errors are reported at `loc`.
  static mlir::FailureOr<GpuMatmulProgram>
  compile(const GpuMatmulProblem &problem, llvm::StringRef chip,
          mlir::Location loc, llvm::StringRef format = "bin");

  const GpuMatmulProblem &problem() const { return prob; }
  /// The kernels, GEMV variants first; kernel i is named kernelName(i).
  llvm::ArrayRef<mlir::qnt::GpuMatmulKernelSpec> kernels() const {
    return specs;
  }
  static std::string kernelName(size_t index);
  /// The serialized module (cubin bytes or PTX text).
  const std::string &image() const { return bytes; }

private:
  GpuMatmulProblem prob;
  llvm::SmallVector<mlir::qnt::GpuMatmulKernelSpec> specs;
  std::string bytes;
};

/// A program loaded on the current CUDA device.
class GpuMatmul {
public:
  static llvm::Expected<GpuMatmul> load(const GpuMatmulProgram &program);

  /// Launches the kernel that serves `m` rows (nothing for m = 0) on the
  /// default stream. `x` holds m*K input elements, `components` the
  /// encoding's storage in order, `out` room for m*N output elements.
  llvm::Error run(int64_t m, const cuda::DeviceBuffer &x,
                  llvm::ArrayRef<const cuda::DeviceBuffer *> components,
                  cuda::DeviceBuffer &out) const;

  /// The kernel run() launches for `m` rows.
  const mlir::qnt::GpuMatmulKernelSpec &kernelFor(int64_t m) const;

private:
  GpuMatmulProblem prob;
  llvm::SmallVector<mlir::qnt::GpuMatmulKernelSpec> specs;
  cuda::Module module;
  std::vector<cuda::FunctionHandle> functions;

  GpuMatmul(const GpuMatmulProgram &program, cuda::Module module)
      : prob(program.problem()), specs(program.kernels()),
        module(std::move(module)) {}
};

/// Bytes of one element of a float or integer MLIR type.
int64_t elementBytes(mlir::Type type);

} // namespace qnt::runtime

#endif // QNT_RUNTIME_GPUMATMUL_H
