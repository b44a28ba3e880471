//===- Passes.h - qnt passes ------------------------------------*- C++ -*-===//
//
// Declarations and registration of every quant-mlir pass and pipeline.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_PASSES_PASSES_H
#define QNT_PASSES_PASSES_H

#include "dialects/qnt/QntDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassManager.h"

namespace mlir {
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

#define GEN_PASS_DECL
#include "passes/Passes.h.inc"

/// The CPU lowering pipeline `qnt-cpu-pipeline` as a textual pipeline: from
/// tensors with qnt ops to the LLVM dialect, with qnt.matmul lowered to
/// loops that dequantize in the inner loop (docs/Pipelines.md).
llvm::StringRef getCpuPipeline();

/// Adds `qnt-cpu-pipeline` to `pm` (on a module).
LogicalResult buildCpuPipeline(OpPassManager &pm);

/// Runs a textual pipeline on `module`: either anchored
/// ("builtin.module(qnt-rtn{...},func.func(...))", as mlir-opt's
/// --pass-pipeline) or a bare list of module-level elements
/// ("qnt-rtn{...},func.func(...)"). Parse errors are reported on the
/// module.
LogicalResult runPassPipeline(ModuleOp module, StringRef pipeline);

/// Registers every qnt pass and the qnt pipelines.
void registerQntPasses();

#define GEN_PASS_REGISTRATION
#include "passes/Passes.h.inc"

} // namespace mlir::qnt

#endif // QNT_PASSES_PASSES_H
