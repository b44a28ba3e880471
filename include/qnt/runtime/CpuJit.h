//===- CpuJit.h - Compile and call qnt functions on the CPU -----*- C++ -*-===//
//
// The CPU executor: lowers a module with the qnt CPU pipeline, JIT-compiles
// it with MLIR's ExecutionEngine and calls one function through its C
// interface with host buffers. Weights stay where they are: qnt.param
// arguments are bound to (aligned) views of memory-mapped files.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_RUNTIME_CPUJIT_H
#define QNT_RUNTIME_CPUJIT_H

#include "qnt/ParamStore.h"

#include "mlir/IR/BuiltinOps.h"

#include <memory>
#include <string>
#include <vector>

namespace mlir {
class ExecutionEngine;
} // namespace mlir

namespace qnt::runtime {

/// A dense row-major host tensor. Either owns its bytes or borrows them
/// (parameters viewed in place in a mapped file).
class HostTensor {
public:
  HostTensor() = default;
  /// An owned, zero-initialized tensor.
  HostTensor(mlir::RankedTensorType type);
  /// A borrowed view; `data` must outlive the tensor and be aligned to the
  /// element size.
  HostTensor(mlir::RankedTensorType type, const void *data);

  mlir::RankedTensorType getType() const { return type; }
  int64_t numElements() const { return type.getNumElements(); }
  int64_t numBytes() const;
  void *data() const { return const_cast<void *>(view); }
  float *f32() const { return static_cast<float *>(data()); }

private:
  mlir::RankedTensorType type;
  std::shared_ptr<std::vector<uint64_t>> storage; // 8-byte aligned
  const void *view = nullptr;
};

/// What the entry function expects, recorded before lowering.
struct EntrySignature {
  std::string name;
  /// Arguments that are not parameters, in order.
  std::vector<mlir::RankedTensorType> inputs;
  /// Parameters bound by qnt-bind-params, in argument order.
  std::vector<std::pair<std::string, mlir::RankedTensorType>> params;
  std::vector<mlir::RankedTensorType> results;
};

/// A compiled entry function.
class CompiledFunction {
public:
  ~CompiledFunction();
  CompiledFunction(CompiledFunction &&);

  /// Lowers `module` (tensors with qnt ops, on entry `entry`, or the only
  /// public function if empty) through qnt-bind-params and
  /// qnt-cpu-pipeline and JIT-compiles it. Diagnostics go to the module's
  /// context.
  static mlir::FailureOr<CompiledFunction> compile(mlir::ModuleOp module,
                                                   llvm::StringRef entry);

  const EntrySignature &signature() const { return sig; }

  /// Binds every parameter from `store` (copying only where the mapped
  /// bytes are misaligned or need widening to f32).
  mlir::LogicalResult bindParams(const mlir::qnt::ParamStore &store,
                                 mlir::Location loc);

  /// Calls the function; `results` are allocated here.
  mlir::LogicalResult call(const std::vector<HostTensor> &inputs,
                           std::vector<HostTensor> &results,
                           mlir::Location loc);

private:
  CompiledFunction() = default;
  EntrySignature sig;
  std::unique_ptr<mlir::ExecutionEngine> engine;
  std::vector<HostTensor> boundParams;
};

} // namespace qnt::runtime

#endif // QNT_RUNTIME_CPUJIT_H
