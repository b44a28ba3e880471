//===- InitAll.cpp - Register everything quant-mlir tools need --*- C++ -*-===//
//
// The one translation unit that includes the upstream InitAll headers (they
// are expensive to compile; docs/Building.md).
//
//===----------------------------------------------------------------------===//

#include "qnt/InitAll.h"
#include "qnt/ptq/RewriteCheck.h"

#include "dialects/qnt/QntDialect.h"
#include "passes/Passes.h"

#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"

#include <mutex>

void qnt::registerAllDialects(mlir::DialectRegistry &registry) {
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  mlir::registerAllToLLVMIRTranslations(registry);
  registry.insert<mlir::qnt::QntDialect>();
}

void qnt::registerAllPasses() {
  // Pass registration is global and rejects duplicates; tools and tests may
  // call this more than once.
  static std::once_flag once;
  std::call_once(once, [] {
    mlir::registerAllPasses();
    mlir::qnt::registerQntPasses();
    // The `verify` option of the folding passes runs modules on the CPU.
    qnt::ptq::installRewriteChecker();
  });
}
