//===- QntTestContext.h - An MLIR context for the kernel tests --*- C++ -*-===//
//
// The context the tests that build and lower qnt IR share: every dialect
// and pass registered, diagnostics collected for failure messages, and the
// `@matmul` function those tests compile.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_TEST_UNIT_SUPPORT_QNTTESTCONTEXT_H
#define QNT_TEST_UNIT_SUPPORT_QNTTESTCONTEXT_H

#include "ComponentConstants.h"

#include "qnt/InitAll.h"

#include "dialects/qnt/QntDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"

#include <memory>
#include <string>

namespace qnt::testing {

/// A base for test fixtures: `ctx` with every qnt dialect and pass
/// registered and loaded; its diagnostics are appended to `diagnostics`.
class QntTestContext {
protected:
  QntTestContext() : ctx(registry()) {
    ctx.loadAllAvailableDialects();
    handler = std::make_unique<mlir::ScopedDiagnosticHandler>(
        &ctx, [this](mlir::Diagnostic &d) {
          diagnostics += d.str() + "\n";
          return mlir::success();
        });
  }
  static mlir::DialectRegistry registry() {
    ::qnt::registerAllPasses();
    mlir::DialectRegistry r;
    ::qnt::registerAllDialects(r);
    return r;
  }

  mlir::MLIRContext ctx;
  std::string diagnostics;
  std::unique_ptr<mlir::ScopedDiagnosticHandler> handler;
};

/// A module with `func @matmul(%x: tensor<?xKxf32>) -> tensor<?xNxf32>`: one
/// qnt.matmul of `spec` whose components are constants of `encoded`.
inline mlir::OwningOpRef<mlir::ModuleOp>
matmulModule(mlir::MLIRContext &ctx, const numerics::EncodingSpec &spec,
             const numerics::EncodedMatrix &encoded, int64_t n, int64_t k) {
  mlir::OpBuilder b(&ctx);
  mlir::Location loc = b.getUnknownLoc();
  mlir::OwningOpRef<mlir::ModuleOp> module = mlir::ModuleOp::create(loc);
  b.setInsertionPointToEnd(module->getBody());
  auto xType = mlir::RankedTensorType::get({mlir::ShapedType::kDynamic, k},
                                           b.getF32Type());
  auto yType = mlir::RankedTensorType::get({mlir::ShapedType::kDynamic, n},
                                           b.getF32Type());
  auto func = mlir::func::FuncOp::create(b, loc, "matmul",
                                         b.getFunctionType({xType}, {yType}));
  mlir::Block *entry = func.addEntryBlock();
  b.setInsertionPointToStart(entry);
  llvm::SmallVector<mlir::Value> components = componentConstants(b, encoded);
  mlir::Value y = mlir::qnt::MatmulOp::create(
      b, loc, yType, entry->getArgument(0),
      mlir::qnt::encodingFromSpec(&ctx, spec), components);
  mlir::func::ReturnOp::create(b, loc, y);
  return module;
}

} // namespace qnt::testing

#endif // QNT_TEST_UNIT_SUPPORT_QNTTESTCONTEXT_H
