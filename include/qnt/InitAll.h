//===- InitAll.h - Register everything quant-mlir tools need ----*- C++ -*-===//
//
// One place that registers dialects, extensions, translations and passes,
// as CIRCT's InitAllDialects.h / InitAllPasses.h do, so every tool sees the
// same set.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_INITALL_H
#define QNT_INITALL_H

namespace mlir {
class DialectRegistry;
} // namespace mlir

namespace qnt {

/// Upstream dialects and extensions, the qnt dialect, and the LLVM IR
/// translations the CPU JIT needs.
void registerAllDialects(mlir::DialectRegistry &registry);

/// Upstream passes, qnt passes and the qnt pipelines.
void registerAllPasses();

} // namespace qnt

#endif // QNT_INITALL_H
